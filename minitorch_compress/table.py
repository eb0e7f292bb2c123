"""``Table``: rows under named columns, printed aligned; what the tools return and the lessons print."""
from collections import namedtuple
import keyword

import numpy as np


class Table:
    """Rows under named columns, printed as an aligned text table.

    ``formats`` maps a column to a format string such as ``"{:.1%}"``; ints print with
    thousands separators. Rows are namedtuples; ``column(name)`` gives one column as a list.
    """

    def __init__(self, columns, rows, formats=None):
        columns = list(columns)
        bad = [c for c in columns if not (isinstance(c, str) and c.isidentifier()) or keyword.iskeyword(c)]
        if bad:
            raise ValueError(f"column names must be Python identifiers (they name row fields), got {bad}")
        self.Row = namedtuple("Row", columns)
        self.rows = [self.Row(*row) for row in rows]
        self.formats = dict(formats or {})

    @property
    def columns(self):
        return self.Row._fields

    def column(self, name):
        if name not in self.columns:
            raise ValueError(f"unknown column {name!r}; the columns are {self.columns}")
        return [getattr(row, name) for row in self.rows]

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, index):
        return self.rows[index]

    def _cell(self, column, value):
        if column in self.formats and value != "":
            return self.formats[column].format(value)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return f"{value:,}"
        if isinstance(value, (float, np.floating)):
            return f"{value:.4g}"
        return str(value)

    def __repr__(self):
        cells = [list(self.columns)] + [[self._cell(c, v) for c, v in zip(self.columns, row)] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
                 for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)
