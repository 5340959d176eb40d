"""The approvers' console (`cardamage console`): a web page on 127.0.0.1 to read the packages and their reports
and to approve or reject them, on AWS with the approver's own credentials or on the local state.

    app.py      the application: `create_app(backend, config, site)`, pure and tested with Starlette's TestClient;
                where it listens (`Site`) and who may call it (the Host, Origin and token checks)
    server.py   the socket and uvicorn, for the command and the browser tests
    templates/  the pages (Jinja2, autoescaped); static/ the stylesheet
"""

DEFAULT_PORT = 8770  # `cardamage console --port`'s default (here: the command line imports no web framework for --help)
