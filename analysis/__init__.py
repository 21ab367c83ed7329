"""Hardware-noise and precision sensitivity studies of mGRADE-HW (the library behind notebooks/).

Modules
-------
settings   the two run settings (``MGRADE_NB_SETTING=small|full``): clips, points, seeds, figure folder
bundles    the trained bundles (``models/bundles/*.npz``) or labelled random placeholders; reference
           accuracies from a bundle's meta
data       the evaluation data of a bundle's task as integer model inputs (:class:`EvalData`)
evaluate   one accuracy measurement: a bundle, data, an optional noise model and a seed
cache      the on-disk result cache (``.cache/sweeps/``, keyed by content hashes)
sweeps     noise sweeps: one task per (point, seed), run on a Dask cluster (all cores), cached; read-offs
cluster    the Dask engine of the sweeps and ``make regress``: a local or a running cluster, jobs stored by key
chips      chip yield: accuracy over many chip instances (static draws), its distribution and 5th percentile
precision  bundle re-quantisation into narrower formats, bit-width sweeps, memory footprint
plots      the figures
cosim      one clip through sim's streaming and whole-sequence paths (and the RTL)
run_notebooks  ``python -m analysis.run_notebooks``: execute every notebook (nbclient)
"""
