"""The mathematics of the probes, written once against a kernel backend (`shallowprobes.backends`)
and free of estimator code: sufficient statistics (`stats`, `normal_equations`, `recentring`,
`stats_file`), the degree-2 feature map (`features`), penalty metrics (`geometry`), the ridge
selection engine (`ridge`), the memory model and route choice (`routes`), the degree-2 routes
(`degree2`, `dual`, `subspace`), the CP factorisation (`cp`), CV scores (`scoring`) and
classifier calibration (`calibration`). See docs/design.md.
"""
