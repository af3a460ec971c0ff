"""The marketing console (/console): server-rendered pages over the same validation and store calls as
the marketing API, behind a signed session cookie (web/pages/security.py) that a marketing or admin
API key opens. One module per page family: login, stores, campaigns, messages, reports (push history
and charts); common.py holds the session guard, CSRF checks and rendering they share, routes.py the
route table entries."""
