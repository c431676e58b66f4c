"""Studies over many runs: arms, the comparison of arms over seeds (``compare``), grids of cells
(``sweep``), the paper's experiments (``reproduce``), shards of a grid, the statistics and the reports."""
