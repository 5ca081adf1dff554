"""The report: a Markdown results table, three plots and one self-contained HTML page.

`write_report` takes plain data — one row of metrics per (method, ratio) and a few examples with
their word scores and keep masks — so it knows nothing of models or files beyond the example
images it embeds. `tables` formats rows (every benchmark prints with `format_table`), `plots` draws
the figures, `examples` builds the examples from scored and gated records, and `page` writes them all,
with the HTML page.
"""

from .page import write_report
from .tables import format_table

__all__ = ["format_table", "write_report"]
