"""``mwanctl web``: a live dashboard for one or more sites.

Layout: ``history`` (SQLite samples and events, bounded), ``poller`` (one thread per site running
the status code path every interval), ``actions`` (validate, plan, deploy, confirm/rollback, keys:
thin jobs over ``mwanctl.deploy`` / ``mwanctl.rotate``), ``auth`` (token or password, sessions,
CSRF), ``views`` (server-rendered HTML and SVG: one renderer for first paint and live updates),
``metrics`` (Prometheus text), ``app`` (Starlette routes, SSE) and ``server`` (uvicorn, bind checks).
"""
