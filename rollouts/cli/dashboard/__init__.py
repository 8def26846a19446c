"""``sluice dashboard``: a local web page that shows every Rollout and explains its decisions.

Its modules stay free of starlette and uvicorn at import time except ``app`` and ``serve``, which
only the command imports when it runs, so ``sluice --help`` never pays for a web stack.
"""
