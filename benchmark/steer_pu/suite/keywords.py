"""A topic concept's keywords (``keywords`` in its card): when a text counts as mentioning the topic.

One rule for the suite's own check (no test negative may mention the topic) and for the
generations' keyword statistic (:mod:`steer_pu.analysis.text_stats`): a keyword, or its plural
with -s / -es, as a whole word, case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def keyword_pattern(keywords: Sequence[str]) -> re.Pattern[str] | None:
    """A whole-word, case-insensitive pattern for ``keywords`` and their plurals (None: no keywords)."""
    if not keywords:
        return None
    alternatives = "|".join(re.escape(k.lower()) for k in sorted(keywords, key=len, reverse=True))
    return re.compile(rf"(?<![\w'])(?:{alternatives})(?:s|es)?(?![\w'])", re.IGNORECASE)


def keyword_hit(text: str, keywords: Sequence[str]) -> bool | None:
    """Whether a keyword appears in ``text`` (None when the concept has no keywords)."""
    pattern = keyword_pattern(keywords)
    return None if pattern is None else bool(pattern.search(text))
