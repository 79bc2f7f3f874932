"""Trap rules indexed by trap OID: a trap is tried only against the rules that can match it.

A rule's ``trap`` and ``clear_trap`` are :class:`~netalert.rules.compile.TrapMatcher`
values: an OID (a MIB notification name is resolved to its OID when the rules
compile), or a glob matched against the trap's name, its short name and its
numeric OID. The index is built with the rules (:class:`~netalert.rules.trapflow.TrapRules`,
at every start and reload) and holds:

* the OIDs in a dict: one lookup finds every rule that names the trap;
* the globs under their literal prefix, the text before the first ``*``, ``?``
  or ``[`` (``IF-MIB::``, ``1.3.6.1.4.1.9.``): a name or OID that does not start
  with it cannot match, so only the globs filed under a prefix of the trap's
  name, short name or OID are tried, with the same fnmatch as before;
* the globs without one (``*``, ``*Down``) in a list tried for every trap.

So 500 rules naming other traps cost a trap what 5 do. :meth:`TrapIndex.hits`
is exactly what :func:`scan`, the linear scan over every rule, gives, in rule
order (a property test compares them on random rule sets and traps).
"""

from __future__ import annotations

from collections.abc import Sequence

from netalert.rules.compile import TrapMatcher, TrapRule
from netalert.rules.mibview import short_name

__all__ = ["Hit", "TrapIndex", "literal_prefix", "scan"]

# A rule a trap matches: (the rule, its ``trap`` matches, its ``clear_trap`` matches).
Hit = tuple[TrapRule, bool, bool]
# A glob of the index: (the rule's position, True for its clear_trap, the matcher).
_Glob = tuple[int, bool, TrapMatcher]
_WILDCARDS = frozenset("*?[")


def literal_prefix(glob: str) -> str:
    """The text before the first wildcard of ``glob``: whatever it matches starts with it
    (fnmatch has no escape character, and matches case-sensitively here)."""
    for n, char in enumerate(glob):
        if char in _WILDCARDS:
            return glob[:n]
    return glob


def scan(rules: Sequence[TrapRule], trap_oid: str, trap_name: str) -> list[Hit]:
    """Every rule's matchers tried in turn: the reference :class:`TrapIndex` must equal."""
    out: list[Hit] = []
    for rule in rules:
        fires = rule.trap.matches(trap_oid, trap_name)
        clears = rule.clear_trap is not None and rule.clear_trap.matches(trap_oid, trap_name)
        if fires or clears:
            out.append((rule, fires, clears))
    return out


class TrapIndex:
    """The trap rules of one rule set, by the OIDs and name prefixes they can match."""

    __slots__ = ("_always", "_exact", "_lengths", "_positions", "_prefixed", "_rules")

    def __init__(self, rules: Sequence[TrapRule]) -> None:
        self._rules = tuple(rules)
        exact: dict[str, dict[int, list[bool]]] = {}
        prefixed: dict[str, dict[tuple[int, bool], _Glob]] = {}
        always: list[_Glob] = []
        for position, rule in enumerate(self._rules):
            for clear, matcher in ((False, rule.trap), (True, rule.clear_trap)):
                if matcher is None:
                    continue
                if matcher.oid:
                    flags = exact.setdefault(matcher.oid, {}).setdefault(position, [False, False])
                    flags[clear] = True
                    continue
                glob = (position, clear, matcher)
                # the name and short name start with the first, the OID with the second
                name_prefix = literal_prefix(matcher.glob)
                oid_prefix = literal_prefix(matcher.glob.lstrip("."))
                if not name_prefix or not oid_prefix:
                    always.append(glob)
                    continue
                for prefix in (name_prefix, oid_prefix):
                    prefixed.setdefault(prefix, {})[position, clear] = glob
        # per OID: its rules' hits in rule order, and their positions (to merge globs in)
        self._exact: dict[str, tuple[Hit, ...]] = {}
        self._positions: dict[str, dict[int, list[bool]]] = {}
        for oid, by_position in exact.items():
            ordered = sorted(by_position.items())
            self._exact[oid] = tuple((self._rules[p], f, c) for p, (f, c) in ordered)
            self._positions[oid] = dict(ordered)
        self._prefixed = {prefix: tuple(globs.values()) for prefix, globs in prefixed.items()}
        self._lengths = tuple(sorted({len(prefix) for prefix in prefixed}))
        self._always = tuple(always)

    def __len__(self) -> int:
        """The rules indexed."""
        return len(self._rules)

    def candidates(self, trap_oid: str, trap_name: str) -> list[_Glob]:
        """The globs that may match the trap (the index's answer before fnmatch)."""
        found = list(self._always)
        prefixed = self._prefixed
        if prefixed:
            oid = trap_oid.lstrip(".")
            short = short_name(trap_name)
            subjects = (trap_name, oid) if short == trap_name else (trap_name, short, oid)
            for length in self._lengths:
                for subject in subjects:
                    globs = prefixed.get(subject[:length])
                    if globs is not None:
                        found.extend(globs)
        return found

    def hits(self, trap_oid: str, trap_name: str) -> Sequence[Hit]:
        """The rules whose ``trap`` or ``clear_trap`` match the trap, in rule order.

        ``trap_oid`` is the numeric OID (a leading dot is ignored), ``trap_name``
        its ``MODULE::name`` (or the numeric OID when no MIB names it).
        """
        oid = trap_oid.lstrip(".")
        globs = self.candidates(trap_oid, trap_name)
        if not globs:
            return self._exact.get(oid, ())
        flags = {p: list(f) for p, f in self._positions.get(oid, {}).items()}
        for position, clear, matcher in globs:
            seen = flags.get(position)
            if seen is not None and seen[clear]:
                continue  # matched already (a glob filed under two prefixes, or the OID)
            if matcher.matches(trap_oid, trap_name):
                if seen is None:
                    seen = flags[position] = [False, False]
                seen[clear] = True
        rules = self._rules
        return [(rules[p], f, c) for p, (f, c) in sorted(flags.items())]
