"""The mathematics of the probes, written once against a kernel backend (`shallowprobes.backends`)
and free of estimator code: sufficient statistics (`stats`), the degree-2 feature map and its
exact re-centring (`features`), penalty metrics (`geometry`), the ridge selection engine
(`ridge`), the degree-2 routes (`degree2`, `dual`, `subspace`), CV scores (`scoring`) and
classifier calibration (`calibration`). See docs/design.md.
"""
