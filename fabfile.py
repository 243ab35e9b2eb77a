"""Fabric's entry point: `fab` looks for `fabfile` in the working directory; the tasks live in deploy/."""
from deploy import ns  # noqa: F401  (Fabric loads the `ns` collection from this module)
