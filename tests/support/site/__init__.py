"""On ``PYTHONPATH`` of the Python processes the tests start (see sitecustomize.py)."""
