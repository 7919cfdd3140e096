"""Official key names for converter messages: the converters' key rules read backwards.

A converter maps official tensor names onto ovparts names with rules ``(official regex, ovparts template,
operation)``. Messages must name keys as the user's file spells them, so this module turns our names back
into official ones: through the record of which official key produced each tensor, or, for tensors the file
lacks, by matching our name against each rule's template and filling the rule's regex with the parts found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .rules import Rule


def official_names(ours: list[str], origins: Mapping[str, str]) -> list[str]:
    """The official keys behind some converted ovparts keys, each once (q/k/v split from one key)."""
    return list(dict.fromkeys(origins.get(k, k) for k in ours))


def _template_regex(template: str) -> str:
    """A regex matching the names ``template`` produces, with one named group per ``\\g<name>`` slot."""
    out = ""
    for part in re.split(r"(\\g<\w+>|\{qkv\})", template):
        slot = re.fullmatch(r"\\g<(\w+)>", part)
        if slot:
            out += f"(?P<{slot.group(1)}>.+?)"
        elif part == "{qkv}":
            out += "(?:q|k|v|query|key|value)"
        else:
            out += re.escape(part)
    return out


def _fill_pattern(pattern: str, values: Mapping[str, str]) -> str:
    """The name a rule's official regex matches when its named groups take ``values`` (plain text kept)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("(?P<", i):
            name = pattern[i + 4 : pattern.index(">", i)]
            depth, j = 0, i
            while True:
                if pattern[j] == "\\":
                    j += 2
                    continue
                depth += {"(": 1, ")": -1}.get(pattern[j], 0)
                if depth == 0:
                    break
                j += 1
            out += values[name]
            i = j + 1
        elif pattern[i] == "\\":
            out += pattern[i + 1]
            i += 2
        else:
            out += pattern[i]
            i += 1
    return out


def official_candidates(
    ours: str, rules: tuple[Rule, ...], official_prefix: str, ours_prefix: str
) -> list[str]:
    """The official names that would have filled our tensor ``ours`` (the rules read backwards), for messages.

    More than one when the releases differ (CLIP's split ``q_proj_weight`` or fused ``in_proj_weight``).
    """
    if not ours.startswith(ours_prefix):
        return []
    name = ours[len(ours_prefix) :]
    found = []
    for pattern, template, _ in rules:
        if not template:
            continue
        match = re.fullmatch(_template_regex(template), name)
        if match is None:
            continue
        official = _fill_pattern(pattern, match.groupdict())
        if re.fullmatch(pattern, official):
            found.append(official_prefix + official)
    return found


def official_missing_names(
    ours: list[str], tables: tuple[tuple[tuple[Rule, ...], str, str], ...]
) -> list[str]:
    """Our missing keys under the official names the user would look for in their file."""
    names = []
    for key in ours:
        found = [n for rules, theirs, mine in tables for n in official_candidates(key, rules, theirs, mine)]
        names.append(" or ".join(dict.fromkeys(found)) if found else key)
    return names
