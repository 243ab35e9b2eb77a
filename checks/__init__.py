"""Post-deploy checks (`pytest checks/ --stack NAME`); not part of the project's own `pytest tests`."""
