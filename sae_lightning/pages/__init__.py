"""What every page of the project shares (report.html, compare.html, diff.html, matrix.html):
the Jinja2 environment with autoescape (env.py), number formats (fmt.py), domain colours
(colors.py), plot geometry (plots.py) and the templates drawing them (templates/: the page
skeleton page.html.j2 with its stylesheet page.css, SVG macros plots.html.j2, small pieces
parts.html.j2). Pages are self-contained: no script or style is fetched, nothing needs a network.

Python computes data; templates write the markup. This package imports nothing of the project
outside itself, so analysis code never depends on rendering and rendering on nothing else.
"""

from .env import environment, render, render_plot

__all__ = ["environment", "render", "render_plot"]
