"""shipshape's sample application: the thing the pipeline deploys, checks and rolls back.

See docs/app-contract.md for what it promises; `app.main:app` is the ASGI entry point.
"""
