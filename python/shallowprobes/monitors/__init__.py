"""Trained probes as monitors and their transfer between models: `bank` (PolynomialMonitor,
ProbeBank), `quotient` (the probe-visible quotient of a bank), `aligner` (QuotientAligner),
`agreement` and `report` (verdict statistics and the coverage report) and `transfer` (transfer,
compare_transfer, few_label_probe).
"""
