/** Prometheus metrics: request count and latency per known path, plus Node's default process metrics. */
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

export const requests = new Counter({
  name: "app_requests_total", help: "HTTP requests answered",
  labelNames: ["method", "path", "status"], registers: [registry],
});
export const latency = new Histogram({
  name: "app_request_duration_seconds", help: "HTTP request latency",
  labelNames: ["method", "path"], registers: [registry],
});

/** Never faulted: the pipeline must still be able to see and probe a bad release. */
export const FAULT_EXEMPT: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/version", "/metrics"]);
// Metric labels use known paths only, so random URLs cannot blow up the label set.
const KNOWN_PATHS: ReadonlySet<string> = new Set([...FAULT_EXEMPT, "/", "/login", "/logout",
  "/api/notes", "/api/projects", "/api/reports", "/api/slow"]);

export function pathLabel(path: string): string {
  return KNOWN_PATHS.has(path) ? path : "other";
}

export function observe(method: string, path: string, status: number, seconds: number): void {
  const label = pathLabel(path);
  requests.inc({ method, path: label, status: String(status) });
  latency.observe({ method, path: label }, seconds);
}
