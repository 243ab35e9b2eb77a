# The two commands the README starts with. Both install what they need from nothing.
.PHONY: local test install host

install:
	scripts/install.sh

host: install
	scripts/local-host.sh

# Set everything up and run the main job on the local stack (this machine as a VPS): provision the
# host, then build the committed HEAD of the app and ship it (canary, promote). A dirty examples/app
# is refused by `fab build`: commit first.
local: host
	.venv/bin/fab setup --stack local && .venv/bin/fab deploy --stack local

# Run the project's tests (unit, Pulumi mocks, and end-to-end against real services on loopback).
test: host
	.venv/bin/python -m pytest tests -q
