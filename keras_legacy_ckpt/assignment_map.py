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

import bisect
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


Shape = Tuple[int, ...]


@dataclasses.dataclass
class SuggestedMap:
    """A proposed assignment map and what it leaves out.

    `matched` is what `assignment_map` assigns, variable by variable, as `plan_assignment_map`
    (hence `warm_start`) resolves it: `warm_start(target, ckpt, assignment_map).loaded == matched`.
    """

    assignment_map: Dict[str, str]
    matched: Dict[str, str]      # model variable name -> checkpoint key the map gives it
    unmatched: List[str]         # model variable names the map gives nothing
    unused: List[str]            # checkpoint keys no model variable takes
    # Model name -> the same-shaped checkpoint keys its name fits equally well (and no other
    # name took). Names cannot decide between them, so the map leaves it unmatched, not guessing.
    ambiguous: Dict[str, List[str]] = dataclasses.field(default_factory=dict)


class _Targets:
    """What checkpoint keys load into: the model's variables, and each TF1 partitioned variable
    ("x/part_0", "x/part_1", ... with no variable "x") as one target "x", as plan_assignment_map
    does. Names and shapes stay in plain dicts and lists, not an object per variable: 10,000
    small objects can set off a full garbage collection of TensorFlow's heap (a quarter second)."""

    def __init__(self, model: Mapping[str, Shape]):
        self._shapes = model
        self._groups = {base: parts for base, parts in partition_groups(model).items() if base not in model}
        names = list(self._groups)
        for name in model:
            part = _PART.match(name) if self._groups else None
            if part is None or part.group(1) not in self._groups:
                names.append(name)
            # else: a part of a group, or a stray part past a gap, which a scope entry never loads either
        self.names = sorted(names)

    def parts(self, name: str) -> Tuple[str, ...]:
        return self._groups.get(name) or (name,)

    def checkpoint_shapes(self, name: str) -> List[Shape]:
        """The checkpoint shapes `name` can take: its own, or its parts' joined along one axis."""
        parts = self._groups.get(name)
        if parts is None:
            return [self._shapes[name]]
        shapes = [self._shapes[p] for p in parts]
        first = shapes[0]
        joined = []
        for axis in range(len(first)):
            if all(len(s) == len(first) and s[:axis] == first[:axis] and s[axis + 1:] == first[axis + 1:]
                   for s in shapes):
                joined.append(first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1:])
        return joined

    def inside(self, scope: str) -> List[str]:
        """The names a scope entry for `scope` covers: a run of the sorted names, found by bisection."""
        if scope == "/":
            return self.names
        # Names starting with "a/b/" sort from "a/b/" up to "a/b0" ("0" follows "/").
        start = bisect.bisect_left(self.names, scope)
        return self.names[start:bisect.bisect_left(self.names, scope[:-1] + "0", start)]


def _tails(name: str) -> List[str]:
    """Its trailing paths, shortest first: "a/b/c" -> ["c", "b/c", "a/b/c"]."""
    tails = []
    end = name.rfind("/")
    while end >= 0:
        tails.append(name[end + 1:])
        end = name.rfind("/", 0, end)
    tails.append(name)
    return tails


def _scopes(name: str) -> List[str]:
    """The scopes holding it, innermost first: "a/b/c" -> ["a/b/", "a/", "/"]."""
    scopes = []
    end = name.rfind("/")
    while end >= 0:
        scopes.append(name[:end + 1])
        end = name.rfind("/", 0, end)
    scopes.append("/")
    return scopes


class _KeysByTail:
    """Checkpoint keys by trailing path and shape: "dense/kernel" and (4, 4) find every
    ".../dense/kernel" of shape (4, 4), so matching a name costs a few lookups, not a scan."""

    def __init__(self, ckpt: Mapping[str, Shape]):
        # Keyed by a string (tail + shape), and most of them name one key, kept as a str rather
        # than a one-key list: few objects for the garbage collector (see _Targets).
        self._keys: Dict[str, Union[str, List[str]]] = {}
        for key in sorted(ckpt):
            shape = _shape_text(ckpt[key])
            for tail in _tails(key):
                slot = tail + shape
                found = self._keys.get(slot)
                if found is None:
                    self._keys[slot] = key
                elif isinstance(found, str):
                    self._keys[slot] = [found, key]
                else:
                    found.append(key)

    def _with(self, tail: str, shape: Shape) -> List[str]:
        found = self._keys.get(tail + _shape_text(shape))
        return [] if found is None else [found] if isinstance(found, str) else found

    def closest(self, name: str, shapes: List[Shape]) -> Tuple[int, List[str]]:
        """The keys sharing the longest trailing path with `name` (of one of `shapes`), and how
        many path components that is (0 and no keys when not even the last one is shared)."""
        tails = _tails(name)
        for kept in range(len(tails), 0, -1):
            if len(shapes) == 1:
                keys = self._with(tails[kept - 1], shapes[0])
            else:
                keys = sorted(k for shape in shapes for k in self._with(tails[kept - 1], shape))
            if keys:
                return kept, keys
        return 0, []


def _shape_text(shape: Shape) -> str:
    return "\0" + ",".join(map(str, shape))  # NUL: no TF name has one, so "a" + "\01,2" is unambiguous


@dataclasses.dataclass
class _NamePairs:
    """Which checkpoint key each model name points to, by trailing path and shape alone."""

    decided: Dict[str, str]          # target name -> the one key it fits best, which fits no other name as well
    owner: Dict[str, str]            # key -> target name (decided's inverse)
    shared: Dict[str, int]           # key -> path components it shares with its decided name
    tied: Dict[str, List[str]]       # target name -> keys it fits equally well

    def accepts(self, name: str, key: str) -> bool:
        """Whether an entry may give `key` to `name`: the key its name decided, or one of the
        keys it is tied between that no other name decided. A scope entry that the decided
        pairs support thus settles a tie the way the rest of its scope is mapped."""
        if name in self.decided:
            return self.decided[name] == key
        return key not in self.owner and key in self.tied.get(name, ())


def _pair_names(targets: _Targets, index: _KeysByTail) -> _NamePairs:
    """Pairs each target with its closest key when that key is the only one and fits no other
    target as well; the rest is tied."""
    owner: Dict[str, str] = {}      # key -> the name sharing the longest path with it
    shared: Dict[str, int] = {}     # key -> that length
    contested: Dict[str, List[str]] = {}  # key -> the names sharing that length with it, when 2+
    tied: Dict[str, List[str]] = {}
    for name in targets.names:
        length, keys = index.closest(name, targets.checkpoint_shapes(name))
        if len(keys) > 1:
            tied[name] = keys  # e.g. enc/dense/kernel <- encoder/layer_0/dense/kernel or layer_1's
        elif keys and length > shared.get(keys[0], 0):
            owner[keys[0]], shared[keys[0]] = name, length
            contested.pop(keys[0], None)
        elif keys and length == shared[keys[0]]:
            contested.setdefault(keys[0], [owner[keys[0]]]).append(name)
    for key, names in contested.items():  # a/dense/kernel and b/dense/kernel <- dense/kernel
        tied.update({name: [key] for name in names})
        del owner[key], shared[key]
    return _NamePairs(decided={name: key for key, name in owner.items()}, owner=owner, shared=shared, tied=tied)


def _apply_scope(ckpt_scope: str, model_scope: str, name: str) -> str:
    rest = name if model_scope == "/" else name[len(model_scope):]
    return rest if ckpt_scope == "/" else ckpt_scope + rest


def _scope_votes(names: _NamePairs) -> "collections.Counter[Tuple[str, str]]":
    """Scope entries {ckpt_scope: model_scope} that make decided pairs, with how many each makes.

    A pair sharing its last k path components is made by the entry that strips everything
    before them (the broadest) and by each narrower one keeping fewer: those are the fallback
    when a broad entry would also pair something wrong (e.g. a new head of another shape).
    """
    votes: collections.Counter = collections.Counter()
    for name, key in names.decided.items():
        kept = names.shared[key]
        votes.update(zip(_scopes(key)[:kept], _scopes(name)[:kept]))
    return votes


@dataclasses.dataclass
class _Proposal:
    """The map so far. Every variable an entry covers gets a key, so `loads` is also what it covers."""

    entries: Dict[str, str] = dataclasses.field(default_factory=dict)  # the assignment map
    scopes: List[str] = dataclasses.field(default_factory=list)        # model scopes of the scope entries
    loads: Dict[str, str] = dataclasses.field(default_factory=dict)    # target name -> key it gets
    taken: Set[str] = dataclasses.field(default_factory=set)           # keys given to a target

    def add(self, ckpt_side: str, model_side: str, pairs: Mapping[str, str]) -> None:
        self.entries[ckpt_side] = model_side
        self.loads.update(pairs)
        self.taken.update(pairs.values())

    def overlaps(self, model_scope: str) -> bool:
        """Whether an entry for `model_scope` would cover a variable a scope entry covers:
        TensorFlow applies both entries to it, a conflict."""
        return any(s.startswith(model_scope) or model_scope.startswith(s) or "/" in (s, model_scope)
                   for s in self.scopes)


def _scope_entry_pairs(ckpt_scope: str, model_scope: str, inside: Sequence[str], names: _NamePairs,
                       taken: Set[str]) -> Optional[Dict[str, str]]:
    """Target name -> key for what {ckpt_scope: model_scope} loads, or None if it must not be proposed.

    Every variable the entry covers must get a key its name chose. A key that is not there would
    make the map fail (TensorFlow's init_from_checkpoint and warm_start(strict=True) raise); one
    its name did not choose is another shape, another block's or another name's tensor.
    """
    pairs = {}
    for name in inside:
        key = _apply_scope(ckpt_scope, model_scope, name)
        if key in taken or not names.accepts(name, key):
            return None
        pairs[name] = key
    return pairs


def _add_scope_entries(proposal: _Proposal, names: _NamePairs, targets: _Targets, max_entries: int) -> None:
    votes = _scope_votes(names)
    # Most pairs first; on a tie the broader entry (shorter scopes), then by name for a stable order.
    # Votes need no recount as entries are taken: an entry whose voters a taken one covers
    # overlaps it (both scopes hold the voter's name), so it is skipped anyway.
    ranked = sorted(votes, key=lambda entry: (-votes[entry], len(entry[0]) + len(entry[1]), entry))
    for ckpt_scope, model_scope in ranked:
        if len(proposal.scopes) == max_entries:
            break
        if ckpt_scope in proposal.entries or proposal.overlaps(model_scope):
            continue  # a dict has one entry per checkpoint scope; a variable takes one entry
        pairs = _scope_entry_pairs(ckpt_scope, model_scope, targets.inside(model_scope), names, proposal.taken)
        if pairs:
            proposal.add(ckpt_scope, model_scope, pairs)
            proposal.scopes.append(model_scope)


def _add_exact_entries(proposal: _Proposal, names: _NamePairs) -> None:
    """{key: name} for each decided pair that no scope entry covers."""
    for name, key in sorted(names.decided.items()):
        if name not in proposal.loads:
            proposal.add(key, name, {name: key})


def suggest_map(model: Mapping[str, Shape], ckpt: Mapping[str, Shape], max_entries: int = 16) -> SuggestedMap:
    """Proposes a small assignment map from model names/shapes to checkpoint keys/shapes.

    Names decide, shapes veto. Each model variable is paired with the same-shaped checkpoint
    key sharing the longest trailing path with it: `enc_v2/layer_1/dense/kernel` with
    `encoder/layer_1/dense/kernel` (3 components), not `encoder/layer_0/dense/kernel` (2), so
    repeated blocks pair by their names, never crosswise. A variable with several such keys,
    or a key two variables fit equally well, is undecided (`ambiguous`). Then, greedily, the
    scope entry making the most decided pairs, and the next, up to `max_entries`: an entry is
    proposed only if every variable it covers gets the key its name decided or (undecided) one
    of its tied keys, so the map loads with strict=True and with TensorFlow's own
    init_from_checkpoint. Decided pairs left over become exact entries. `matched` is what the
    map assigns as `plan_assignment_map` resolves it; a map that would load nothing is not
    proposed (the map is then empty).
    """
    model = {name: tuple(shape) for name, shape in model.items()}
    targets = _Targets(model)
    names = _pair_names(targets, _KeysByTail(ckpt))
    proposal = _Proposal()
    _add_scope_entries(proposal, names, targets, max_entries)
    _add_exact_entries(proposal, names)
    # `loads` is what plan_assignment_map makes of the entries (the tests check it case by
    # case): each entry covers exactly the targets it was checked against.
    matched = {part: key for name, key in sorted(proposal.loads.items()) for part in targets.parts(name)}
    return SuggestedMap(
        assignment_map=proposal.entries if matched else {},  # never a map that loads nothing
        matched=matched,
        unmatched=sorted(n for n in model if n not in matched),
        unused=sorted(k for k in ckpt if k not in proposal.taken),
        ambiguous=_still_ambiguous(names, proposal))


def _still_ambiguous(names: _NamePairs, proposal: _Proposal) -> Dict[str, List[str]]:
    """Unmatched names -> their tied keys that no other name took. A name whose tied keys all
    went to names that fit them better (a 6th block against 5 in the checkpoint) is not
    ambiguous, just unmatched."""
    ambiguous = {}
    for name, keys in sorted(names.tied.items()):
        if name not in proposal.loads:
            free = [k for k in keys if k not in names.owner and k not in proposal.taken]
            if free:
                ambiguous[name] = free
    return ambiguous
