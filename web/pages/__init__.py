"""Pages people use (HTML): the join form, the card page, activation and the marketing console.

templating.py renders Jinja2 templates (autoescaped, one base layout, ru/en by the program and
Accept-Language); security.py owns what every page shares: the Content-Security-Policy, CSRF tokens
and the console's signed session cookie; static/ holds our CSS and scripts (no CDN at run time:
Leaflet comes from the xstatic-leaflet package, mounted at /static/leaflet)."""
