"""The estimators (scikit-learn API): thin classes over `shallowprobes.solve`. `base` holds the
fit / partial_fit / update scaffolding every ridge probe shares, `classifier` the label coding
and probabilities, `polynomial` the degree-2 outputs and gamma search; `linear`, `quadratic`
and `cp` are the probes themselves.
"""
