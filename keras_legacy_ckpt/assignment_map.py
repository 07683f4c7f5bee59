"""Assignment maps: which checkpoint tensor each model variable gets.

Three forms are accepted:

* a dict `{checkpoint_scope_or_name: model_scope_or_name}` with exactly the semantics of
  `tf.compat.v1.train.init_from_checkpoint` (entries applied in sorted order of their
  checkpoint side; "/" is the root; a name with no variable behind it but `NAME/part_0`
  is a TF1 partitioned variable). Where TensorFlow silently does something surprising
  we raise `AssignmentMapError` instead (see README, "Decisions").
* a list of `(regex, replacement)` rules, applied to checkpoint keys: the first rule
  whose pattern is found in a key rewrites it with `re.sub`; a key no rule matches
  keeps its name; a `None` replacement drops the key.
* a callable `checkpoint_key -> model name or None`.

The dict form is resolved from the model's side, like TensorFlow does; rules and
callables from the checkpoint's side. Both end in the same `MapPlan`.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import re
from typing import (Any, Callable, Collection, Dict, Iterable, List, Mapping, Optional, Sequence,
                    Set, Tuple, Union)

from keras_legacy_ckpt.errors import AssignmentMapError

Rules = Sequence[Tuple[str, Optional[str]]]
NameMapping = Union[None, Mapping[str, Any], Rules, Callable[[str], Optional[str]]]

_PART = re.compile(r"^(.*)/part_(\d+)$")


@dataclasses.dataclass(frozen=True)
class Match:
    """One checkpoint key assigned to one model variable (or to the parts of one)."""

    model_name: str
    parts: Tuple[str, ...]
    key: str


@dataclasses.dataclass
class MapPlan:
    """What an assignment map does with a given model and checkpoint."""

    matches: Dict[str, Match]
    # Model names the map sends to a checkpoint key that is not in the checkpoint.
    not_found: Dict[str, str]
    # Every model variable name inside the map's model scopes.
    covered: Set[str]

    def missing(self) -> List[str]:
        loaded = {part for match in self.matches.values() for part in match.parts}
        return sorted(self.covered - loaded)


def partition_groups(names: Iterable[str]) -> Dict[str, Tuple[str, ...]]:
    """Maps each TF1 partitioned base name ("emb") to its parts ("emb/part_0", ...)."""
    found: Dict[str, Dict[int, str]] = collections.defaultdict(dict)
    for name in names:
        m = _PART.match(name)
        if m:
            found[m.group(1)][int(m.group(2))] = name
    groups = {}
    for base, parts in found.items():
        count = 0
        while count in parts:
            count += 1
        if count:
            groups[base] = tuple(parts[i] for i in range(count))
    return groups


class _Planner:
    def __init__(self, model_names: Collection[str], ckpt_keys: Collection[str]):
        self.names = set(model_names)
        self.keys = ckpt_keys if isinstance(ckpt_keys, (set, dict)) else set(ckpt_keys)
        self.groups = partition_groups(self.names)
        self.proposed: Dict[str, Dict[str, str]] = collections.defaultdict(dict)
        self.parts: Dict[str, Tuple[str, ...]] = {}
        self.covered: Set[str] = set()

    def resolve(self, name: str) -> Optional[Tuple[str, ...]]:
        if name in self.names:
            return (name,)
        return self.groups.get(name)

    def propose(self, model_name: str, parts: Tuple[str, ...], key: str, because: str) -> None:
        self.parts[model_name] = parts
        self.covered.update(parts)
        self.proposed[model_name].setdefault(key, because)

    def finish(self) -> MapPlan:
        by_part: Dict[str, Dict[str, str]] = collections.defaultdict(dict)
        for model_name, keys in self.proposed.items():
            for part in self.parts[model_name]:
                by_part[part].update(keys)
        for part, keys in sorted(by_part.items()):
            if len(keys) > 1:
                raise AssignmentMapError(
                    "The assignment map sends %d checkpoint tensors to model variable %r: %s. Each "
                    "variable can take one tensor; remove all but one of these entries."
                    % (len(keys), part, "; ".join("%r (from %s)" % kv for kv in sorted(keys.items()))))
        matches, not_found = {}, {}
        for model_name, keys in sorted(self.proposed.items()):
            (key,) = keys
            if key in self.keys:
                matches[model_name] = Match(model_name, self.parts[model_name], key)
            else:
                not_found[model_name] = key
        return MapPlan(matches=matches, not_found=not_found, covered=self.covered)


def _describe_entry(ckpt_name: str, model_name: str) -> str:
    return "{%r: %r}" % (ckpt_name, model_name)


def _model_side_name(value: Any, names_by_variable: Mapping[int, str]) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(id(v) in names_by_variable for v in value):
        bases = {_PART.sub(r"\1", names_by_variable[id(v)]) for v in value}
        if len(bases) == 1:
            return bases.pop()
    if id(value) in names_by_variable:
        return names_by_variable[id(value)]
    raise AssignmentMapError(
        "Assignment map value %r is neither a name nor a variable of the model. Use the model "
        "variable's legacy name (e.g. 'backbone/dense/kernel') or a scope ending in '/'." % (value,))


def plan_assignment_map(assignment_map: NameMapping, model_names: Collection[str],
                        ckpt_keys: Collection[str], *,
                        names_by_variable: Optional[Mapping[int, str]] = None) -> MapPlan:
    """Resolves `assignment_map` against a model's legacy names and a checkpoint's keys.

    Raises AssignmentMapError for maps that are malformed whatever the checkpoint holds.
    Model variables whose mapped key is absent from the checkpoint end up in
    `MapPlan.not_found`: whether that is an error is the caller's choice (`strict`).
    """
    planner = _Planner(model_names, ckpt_keys)
    if assignment_map is None:
        assignment_map = {"/": "/"}
    if isinstance(assignment_map, Mapping):
        _plan_dict(planner, assignment_map, names_by_variable or {})
    else:
        rename = forward_mapper(assignment_map)
        planner.covered.update(planner.names)
        for key in sorted(planner.keys):
            target = rename(key)
            parts = planner.resolve(target) if target is not None else None
            if parts is not None:
                planner.propose(target, parts, key, "checkpoint key %r" % key)
    return planner.finish()


def _plan_dict(planner: _Planner, assignment_map: Mapping[str, Any],
               names_by_variable: Mapping[int, str]) -> None:
    for ckpt_name in assignment_map:
        if not isinstance(ckpt_name, str):
            raise AssignmentMapError("Assignment map keys must be checkpoint names or scopes (str); "
                                     "got %r." % (ckpt_name,))
    for ckpt_name, value in sorted(assignment_map.items(), key=lambda kv: kv[0]):
        model_name = _model_side_name(value, names_by_variable)
        entry = _describe_entry(ckpt_name, model_name)
        parts = planner.resolve(model_name)
        if parts is not None:
            if ckpt_name.endswith("/"):
                raise AssignmentMapError(
                    "Assignment map entry %s maps checkpoint scope %r to the single variable %r. "
                    "Map a scope to a scope ({%r: %r}) or a tensor name to a variable name."
                    % (entry, ckpt_name, model_name, ckpt_name, model_name.rsplit("/", 1)[0] + "/"))
            planner.propose(model_name, parts, ckpt_name, "entry %s" % entry)
            continue
        if not model_name.endswith("/"):
            raise AssignmentMapError(
                "Assignment map entry %s: %r is neither a variable of the model nor a scope "
                "(scopes end in '/').%s" % (entry, model_name, _did_you_mean(model_name, planner.names)))
        if not ckpt_name.endswith("/"):
            raise AssignmentMapError(
                "Assignment map entry %s maps the tensor name %r to the model scope %r. A scope maps "
                "to a scope: use {%r: %r}." % (entry, ckpt_name, model_name, ckpt_name + "/", model_name))
        scope = model_name[:model_name.rindex("/")]
        in_scope = sorted(n for n in planner.names if not scope or n.startswith(scope + "/"))
        if not in_scope:
            raise AssignmentMapError(
                "Assignment map entry %s: the model has no variable in scope %r.%s"
                % (entry, model_name, _did_you_mean(model_name, _scopes_of(planner.names))))
        for var_name in in_scope:
            partition = _PART.match(var_name)
            base = var_name
            if partition and partition.group(1) in planner.groups and partition.group(1) not in planner.names:
                base = partition.group(1)  # TF consumes "/part_N": the parts share one tensor
            tensor = base[len(scope):]
            if model_name != "/":
                tensor = tensor[1:]
            if ckpt_name != "/":
                tensor = ckpt_name + tensor
            if tensor.endswith("/"):
                tensor = tensor[:-1]
            planner.propose(base, planner.resolve(base), tensor, "entry %s" % entry)


def _scopes_of(names: Iterable[str]) -> Set[str]:
    scopes = set()
    for name in names:
        pieces = name.split("/")[:-1]
        for i in range(1, len(pieces) + 1):
            scopes.add("/".join(pieces[:i]) + "/")
    return scopes


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.5)
    return (" Did you mean %s?" % " or ".join(repr(c) for c in close)) if close else ""


def compile_patterns(patterns: Union[str, Iterable[str]], what: str) -> List[re.Pattern]:
    """Compiles user regexes; a bad one is an AssignmentMapError naming it."""
    if isinstance(patterns, str):
        patterns = [patterns]
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as e:
            raise AssignmentMapError("%s pattern %r is not a valid regular expression: %s."
                                     % (what, pattern, e)) from None
    return compiled


def _compile_rules(rules: Sequence[Any]) -> List[Tuple[re.Pattern, Optional[str]]]:
    compiled = []
    for rule in rules:
        if not (isinstance(rule, (tuple, list)) and len(rule) == 2 and isinstance(rule[0], str)
                and (rule[1] is None or isinstance(rule[1], str))):
            raise AssignmentMapError(
                "A rule list holds (regex, replacement) pairs of strings (replacement None drops "
                "the key); got %r." % (rule,))
        try:
            compiled.append((re.compile(rule[0]), rule[1]))
        except re.error as e:
            raise AssignmentMapError("Rule regex %r is not a valid regular expression: %s." % (rule[0], e)) from None
    return compiled


def _dict_mapper(mapping: Mapping[str, Optional[str]]) -> Callable[[str], Optional[str]]:
    exact: Dict[str, Optional[str]] = {}
    scopes: List[Tuple[str, Optional[str]]] = []
    for old, new in mapping.items():
        if not isinstance(old, str) or not (new is None or isinstance(new, str)):
            raise AssignmentMapError("A rename mapping maps names (str) to names or None; got %r: %r." % (old, new))
        if old.endswith("/") != (new is None or new.endswith("/")) and new is not None:
            raise AssignmentMapError(
                "Rename entry %s maps a scope to a plain name or the reverse. Scopes end in '/' "
                "on both sides ({'old/': 'new/'}); exact names on neither." % _describe_entry(old, new))
        if old.endswith("/"):
            scopes.append((old, new))
        else:
            exact[old] = new
    scopes.sort(key=lambda s: len(s[0]) if s[0] != "/" else 0, reverse=True)

    def rename(name: str) -> Optional[str]:
        if name in exact:
            return exact[name]
        for old, new in scopes:
            if old == "/" or name.startswith(old):
                if new is None:
                    return None
                rest = name if old == "/" else name[len(old):]
                return rest if new == "/" else new + rest
        return name

    return rename


def forward_mapper(mapping: NameMapping) -> Callable[[str], Optional[str]]:
    """Returns `old_name -> new_name or None` for any mapping form.

    Names the mapping does not cover keep their own name; None means "drop".
    """
    if mapping is None:
        return lambda name: name
    if isinstance(mapping, Mapping):
        return _dict_mapper(mapping)
    if callable(mapping):
        def call(name: str) -> Optional[str]:
            new = mapping(name)
            if new is not None and not isinstance(new, str):
                raise AssignmentMapError("The mapping callable returned %r for %r; it must return "
                                         "a name (str) or None." % (new, name))
            return new
        return call
    if isinstance(mapping, (list, tuple)):
        rules = _compile_rules(mapping)

        def apply_rules(name: str) -> Optional[str]:
            for pattern, replacement in rules:
                if pattern.search(name):
                    return None if replacement is None else pattern.sub(replacement, name)
            return name
        return apply_rules
    raise AssignmentMapError(
        "Unsupported assignment map of type %s. Use None, a dict {checkpoint_scope: model_scope}, "
        "a list of (regex, replacement) pairs, or a callable." % type(mapping).__name__)


def parse_map_spec(spec: str, into: Optional[Dict[str, Optional[str]]] = None) -> Dict[str, Optional[str]]:
    """Parses "ckpt_scope/=model_scope/,old_name=new_name" into a dict ("x=" maps x to None).

    `into` extends an earlier dict (several --map flags); a name given twice is an error.
    """
    mapping: Dict[str, Optional[str]] = {} if into is None else into
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item.count("=") != 1:
            raise AssignmentMapError(
                "Map entry %r must look like 'old=new' or 'old_scope/=new_scope/' (entries separated by "
                "commas, one '=' each)." % item)
        old, new = (side.strip() for side in item.split("="))
        if not old:
            raise AssignmentMapError("Map entry %r has nothing left of '='." % item)
        if old in mapping:
            raise AssignmentMapError("The map names %r twice (%r and %r); give each name once."
                                     % (old, "%s=%s" % (old, mapping[old] or ""), item))
        mapping[old] = new or None
    return mapping


def validate_warm_start_map(assignment_map: NameMapping) -> None:
    """Checks what can be checked of a warm-start map without a model or checkpoint."""
    if isinstance(assignment_map, Mapping):
        if not assignment_map:
            raise AssignmentMapError("The assignment map is empty: it would load nothing. Leave it unset for "
                                     "the identity map.")
        for ckpt_name, model_name in assignment_map.items():
            if not isinstance(ckpt_name, str) or not isinstance(model_name, str):
                raise AssignmentMapError(
                    "Assignment map entry %r: %r maps checkpoint names to model names, both strings (use "
                    "ignore=[...] to leave variables alone)." % (ckpt_name, model_name))
            if ckpt_name.endswith("/") and not model_name.endswith("/"):
                raise AssignmentMapError("Assignment map entry %s maps a checkpoint scope to a plain name; scopes "
                                         "end in '/' on both sides." % _describe_entry(ckpt_name, model_name))
    else:
        forward_mapper(assignment_map)


def parse_rule_spec(spec: str) -> Tuple[str, str]:
    """Parses "PATTERN=>REPLACEMENT" into a (regex, replacement) rule."""
    if "=>" not in spec:
        raise AssignmentMapError("Regex rule %r must look like 'PATTERN=>REPLACEMENT'." % spec)
    pattern, replacement = spec.split("=>", 1)
    return pattern, replacement


def combine_mappings(mapping: Optional[Mapping[str, Optional[str]]], rules: Rules) -> NameMapping:
    """One mapping from an exact/scope dict and regex rules: the dict first, then the rules."""
    if not rules:
        return mapping
    if not mapping:
        return list(rules)
    by_dict = _dict_mapper(mapping)
    by_rules = forward_mapper(list(rules))
    covered = set(mapping)

    def combined(name: str) -> Optional[str]:
        if name in covered or any(s.endswith("/") and (s == "/" or name.startswith(s)) for s in covered):
            return by_dict(name)
        return by_rules(name)

    return combined


@dataclasses.dataclass
class SuggestedMap:
    """A proposed assignment map and what it leaves out."""

    assignment_map: Dict[str, str]
    matched: Dict[str, str]      # model name -> checkpoint key the map gives it
    unmatched: List[str]         # model names the map gives no (shape-compatible) tensor
    unused: List[str]            # checkpoint keys no model variable takes


def _apply_scope(ckpt_scope: str, model_scope: str, name: str) -> str:
    rest = name if model_scope == "/" else name[len(model_scope):]
    return rest if ckpt_scope == "/" else ckpt_scope + rest


def _in_scope(model_scope: str, name: str) -> bool:
    return model_scope == "/" or name.startswith(model_scope)


def _scope_votes(model: Mapping[str, Tuple[int, ...]], ckpt: Mapping[str, Tuple[int, ...]],
                 names: Iterable[str]) -> "collections.Counter[Tuple[str, str]]":
    by_leaf: Dict[str, List[str]] = collections.defaultdict(list)
    for key in ckpt:
        by_leaf[key.rsplit("/", 1)[-1]].append(key)
    votes: collections.Counter = collections.Counter()
    for name in names:
        for key in by_leaf.get(name.rsplit("/", 1)[-1], [])[:64]:
            if tuple(ckpt[key]) != tuple(model[name]):
                continue
            a, b = name.split("/"), key.split("/")
            common = 0
            while common < min(len(a), len(b)) and a[-1 - common] == b[-1 - common]:
                common += 1
            # Every scope depth that keeps the names' common tail votes: narrower entries
            # are the fallback when the broadest one would pair mismatched shapes.
            for kept in range(common, 0, -1):
                model_scope = "/".join(a[:len(a) - kept])
                ckpt_scope = "/".join(b[:len(b) - kept])
                votes[(ckpt_scope + "/" if ckpt_scope else "/", model_scope + "/" if model_scope else "/")] += 1
    return votes


def suggest_map(model: Mapping[str, Tuple[int, ...]], ckpt: Mapping[str, Tuple[int, ...]],
                max_entries: int = 16) -> SuggestedMap:
    """Proposes a small assignment map from model names/shapes to checkpoint keys/shapes.

    Greedy: the scope-to-scope entry that matches the most names (same trailing path and
    shape) first, then the next among names no entry covers yet, then exact entries for what
    is left when the match is unique. A scope entry is proposed only if none of the pairs it
    makes has a shape mismatch; otherwise its compatible pairs become exact entries. Nothing
    proposed ever pairs tensors of different shapes.
    """
    mapping: Dict[str, str] = {}
    matched: Dict[str, str] = {}
    covered: Set[str] = set()
    for _ in range(max_entries):
        uncovered = [n for n in model if n not in covered]
        votes = _scope_votes(model, ckpt, uncovered)
        # Most votes first; on a tie the broader entry (shorter scopes).
        candidates = sorted(votes, key=lambda c: (-votes[c], len(c[0]) + len(c[1])))
        fallback = None
        for ckpt_scope, model_scope in candidates:
            in_scope = [n for n in model if _in_scope(model_scope, n)]
            if any(n in covered for n in in_scope):
                continue  # a second entry for a covered variable would be a conflict
            pairs = {n: _apply_scope(ckpt_scope, model_scope, n) for n in in_scope}
            good = {n: k for n, k in pairs.items() if k in ckpt and tuple(ckpt[k]) == tuple(model[n])}
            if not good:
                continue
            if all(k not in ckpt or tuple(ckpt[k]) == tuple(model[n]) for n, k in pairs.items()):
                mapping[ckpt_scope] = model_scope
                covered.update(in_scope)
                matched.update(good)
                break
            fallback = fallback or good
        else:
            if fallback is None:
                break
            # Only scopes that would pair mismatched shapes: take their good pairs as exact names.
            mapping.update({k: n for n, k in fallback.items()})
            covered.update(fallback)
            matched.update(fallback)
    taken = set(matched.values())
    for name in sorted(n for n in model if n not in covered):
        leaf_path = name.split("/")
        candidates = [k for k in ckpt if k not in taken and tuple(ckpt[k]) == tuple(model[name])
                      and k.split("/")[-1] == leaf_path[-1]]
        if len(candidates) == 1:
            mapping[candidates[0]] = name
            matched[name] = candidates[0]
            taken.add(candidates[0])
    return SuggestedMap(
        assignment_map=mapping, matched=matched,
        unmatched=sorted(n for n in model if n not in matched),
        unused=sorted(k for k in ckpt if k not in set(matched.values())))
