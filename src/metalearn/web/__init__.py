"""The pages `metalearn serve` shows under `/`: runs, one run, start, meta-test, compare, study.

Server-rendered HTML (Jinja2, autoescaped) with charts drawn as SVG on the server, and a few
small scripts of our own for live updates and the layer builder; nothing is fetched from
another host. Writes need a signed-in session (sessions.py) and its CSRF token."""
