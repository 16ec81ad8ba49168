"""Synthetic activation data for demos and tests (generated, never downloaded).

Besides :func:`make_linear_concepts`, this package generates the synthetic tasks of Lee & Kondor
(2026), "Deep Minds and Shallow Probes": XOR (:func:`make_xor`) and the circle
(:func:`make_circle`) are solved by degree-2 polynomial probes but not by linear ones, and
N-bit parity (:func:`make_parity`) with N >= 3 defeats degree 2 as well. They return a
:class:`SyntheticTask` whose signal lives in a known low-dimensional subspace of randomly
scrambled (affinely transformed) coordinates.

What is where:

- ``paper_tasks``: :class:`SyntheticTask`, :func:`make_xor`, :func:`make_parity`,
  :func:`make_circle` (the paper's tasks);
- ``hidden_states``: :class:`LinearConceptData` / :func:`make_linear_concepts` (linearly
  encoded concepts in offset, anisotropic activations) and :class:`WideTask` /
  :func:`make_wide_interaction` (LLM-width hidden states with a topic interaction);
- ``model_pairs``: :class:`ModelPair`, :func:`readout_equivalent_models` and
  :func:`concept_model_pair` (paired hidden states of two models, with monitors on the first,
  for trying transfer);
- ``transforms``: the random orthogonal and affine maps the generators scramble with;
- ``_checks``: the argument checks they share.
"""

from .hidden_states import LinearConceptData, WideTask, make_linear_concepts, make_wide_interaction
from .model_pairs import ModelPair, concept_model_pair, readout_equivalent_models
from .paper_tasks import SyntheticTask, make_circle, make_parity, make_xor

__all__ = [
    "LinearConceptData",
    "SyntheticTask",
    "make_circle",
    "make_linear_concepts",
    "make_parity",
    "make_xor",
    "ModelPair",
    "readout_equivalent_models",
    "concept_model_pair",
    "WideTask",
    "make_wide_interaction",
]
