"""HOST-CP (Das et al., ECML PKDD 2021) and the suite's variants of it.

- ``layer``: the per-mini-batch convex program as a cvxpylayers layer (the reference backend);
- ``solver``: the fast exact batched solver of the same program (QP and LP) with its exact gradient;
- ``opening``: the facility-location program with opening variables used by ``hostcp-fl``;
- ``hypergradient``: the exact outer gradient (validation loss of the retrained learner) for ``outer="hypergradient"``;
- ``faithful``: ``hostcp``, ``hostcp-lp`` and ``hostcp-paper``, the paper's method;
- ``variants``: ``hostcp-fl``, the label-aware variant (how it differs and why: its docstring).
"""
