"""The menu checker: everything wrong with a parsed menu, each finding with its key path.

Pure: queue ids and languages come from the caller (the loaded settings); prompt files on disk
are audited in ``callcenter.prompts``. Findings are errors unless marked as warnings.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ivr.queue_prompts import QUEUE_PROMPTS
from ivr.menu import (
    INPUT_TYPES,
    PROMPT_ID,
    TERMINAL_TYPES,
    CallbackNode,
    CallerNode,
    CollectNode,
    HoursNode,
    IvrMenu,
    LanguageNode,
    LookupNode,
    MenuNode,
    PlayNode,
    QueueNode,
    parse_prompt_item,
)
from ivr.ports import BALANCE_STATUSES, ORDER_STATUSES, TIERS, WARRANTY_STATUSES
from ivr.session import LOOKUP_VARIABLES
from ivr.speech import FRAGMENTS

ENUMERATED_VARIABLES: dict[str, tuple[str, ...]] = {
    "order.status": ORDER_STATUSES,
    "warranty.status": WARRANTY_STATUSES,
    "account.status": BALANCE_STATUSES,
    "caller.tier": TIERS,
}


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def format(self, source: str) -> str:
        suffix = " (warning)" if self.severity == "warning" else ""
        return f"{source}: {self.path}: {self.message}{suffix}"


# ------------------------------------------------------------------------------ the graph


def edges(menu: IvrMenu, node_id: str) -> list[tuple[str, str]]:
    """``(key path, target)`` for every way out of a node, inherited defaults included."""
    node = menu.menus[node_id]
    base = f"menus.{node_id}"
    out: list[tuple[str, str]] = []

    def add(name: str, target: str | None) -> None:
        if target is not None:
            out.append((f"{base}.{name}", target))

    if isinstance(node, MenuNode):
        for key, target in node.options.items():
            add(f"options.{key}", target)
    if isinstance(node, (MenuNode, CollectNode)):
        if node.on_failure is not None:
            add("on_failure", node.on_failure)
        elif menu.defaults.on_failure is not None:
            out.append(("defaults.on_failure", menu.defaults.on_failure))
    if isinstance(node, (CollectNode, PlayNode, LanguageNode)):
        add("next", node.next)
    if isinstance(node, LookupNode):
        add("found", node.found)
        add("not_found", node.not_found)
        add("failed", node.failed)
    if isinstance(node, HoursNode):
        add("open", node.open)
        add("closed", node.closed)
        add("holiday", node.holiday)
    if isinstance(node, CallerNode):
        add("blacklisted", node.blacklisted)
        for tier, target in node.tiers.items():
            add(f"tiers.{tier}", target)
        add("known", node.known)
        add("unknown", node.unknown)
    if isinstance(node, CallbackNode):
        add("outside_hours", node.outside_hours)
        add("no_number", node.no_number)
    return out


def _can_end_by_itself(menu: IvrMenu, node_id: str) -> bool:
    node = menu.menus[node_id]
    if node.type in TERMINAL_TYPES:
        return True
    if isinstance(node, (MenuNode, CollectNode)):
        return menu.setting(node, "on_failure") is None  # the last retry hangs up
    return False


def _input_follows(menu: IvrMenu, node_id: str, succ: dict[str, list[str]]) -> bool:
    """Whether keys typed ahead at ``node_id`` can reach a menu or collect node (they pass through
    play, lookup, hours, language and caller nodes, and end with the IVR)."""
    seen: set[str] = set()
    todo = list(succ.get(node_id, []))
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        kind = menu.menus[current].type
        if kind in ("menu", "collect"):
            return True
        if kind not in TERMINAL_TYPES:
            todo += succ.get(current, [])
    return False


def _sccs(nodes: Sequence[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(succ.get(root, [])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(succ.get(child, []))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
    return result


def _cycle_text(component: list[str], succ: dict[str, list[str]]) -> str:
    members = set(component)
    start = min(component)
    walk = [start]
    seen = {start}
    current = start
    while True:
        following = sorted(t for t in succ.get(current, []) if t in members)
        nxt = next((t for t in following if t not in seen), None) or (start if start in following else None)
        if nxt is None:
            nxt = following[0]
        walk.append(nxt)
        if nxt == start or nxt in seen:
            break
        seen.add(nxt)
        current = nxt
    return " → ".join(walk)


# ------------------------------------------------------------------------------ prompt use


def _prompt_fields(menu: IvrMenu) -> Iterator[tuple[str, list[str]]]:
    """``(key path, items)`` of every prompt list in the menu."""
    for name in ("invalid_prompt", "timeout_prompt"):
        yield f"defaults.{name}", list(getattr(menu.defaults, name))
    for node_id, node in menu.menus.items():
        for name in ("prompt", "invalid_prompt", "timeout_prompt", "confirm"):
            items = getattr(node, name, None)
            if items:
                yield f"menus.{node_id}.{name}", list(items)


def _template_expansions(item: str, names: tuple[str, ...]) -> list[str] | None:
    """Every prompt id a template can become, or None when a variable is not enumerated."""
    results = [item]
    for name in names:
        values = ENUMERATED_VARIABLES.get(name)
        if values is None:
            return None
        results = [r.replace("{" + name + "}", v) for r in results for v in values]
    return results


def _template_regex(item: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^}]+\}", item)
    return re.compile("^" + "[a-z0-9_]+".join(re.escape(p) for p in parts) + "$")


def used_prompts(menu: IvrMenu) -> set[str]:
    """Prompt ids the menu can play (template expansions included, fragments excluded)."""
    used: set[str] = set()
    all_ids = {pid for table in menu.prompts.values() for pid in table}
    for _, items in _prompt_fields(menu):
        for item in items:
            kind, value, names = parse_prompt_item(item)
            if kind == "prompt":
                used.add(value)
            elif kind == "template":
                expansions = _template_expansions(value, names)
                if expansions is None:
                    pattern = _template_regex(value)
                    used |= {pid for pid in all_ids if pattern.match(pid)}
                else:
                    used |= set(expansions)
    return used


# ------------------------------------------------------------------------------ the checker


def check_menu(
    menu: IvrMenu,
    *,
    queues: Collection[str] | None = None,
    languages: Sequence[str] | None = None,
    default_language: str | None = None,
) -> list[Finding]:
    """Every problem with ``menu``: unknown targets and queues, unreachable nodes, loops with no
    way out, keys bound twice, missing prompt texts and unknown variables."""
    findings: list[Finding] = []
    error = lambda path, message: findings.append(Finding(path, message))  # noqa: E731
    warn = lambda path, message: findings.append(Finding(path, message, "warning"))  # noqa: E731
    nodes = list(menu.menus)

    # -- targets
    def target_ok(path: str, target: str | None) -> None:
        if target is not None and target not in menu.menus:
            error(path, f"target {target!r} does not exist")

    target_ok("start", menu.start)
    target_ok("caller.blacklisted", menu.caller.blacklisted)
    target_ok("limits.on_limit", menu.limits.on_limit)
    target_ok("defaults.on_failure", menu.defaults.on_failure)
    for node_id in nodes:
        for path, target in edges(menu, node_id):
            if not path.startswith("defaults."):
                target_ok(path, target)

    # -- queues
    def queue_ok(path: str, queue: str) -> None:
        if queues is not None and queue not in queues:
            error(path, f"queue {queue!r} does not exist (queues: {', '.join(sorted(queues))})")

    for tier, queue in menu.defaults.tier_queue.items():
        queue_ok(f"defaults.tier_queue.{tier}", queue)
    for node_id, node in menu.menus.items():
        if isinstance(node, (QueueNode, CallbackNode)):
            queue_ok(f"menus.{node_id}.queue", node.queue)
        if isinstance(node, QueueNode) and node.tier_queue:
            for tier, queue in node.tier_queue.items():
                queue_ok(f"menus.{node_id}.tier_queue.{tier}", queue)

    # -- reachability and loops
    succ = {n: [t for _, t in edges(menu, n) if t in menu.menus] for n in nodes}
    roots = [t for t in (menu.start, menu.caller.blacklisted, menu.limits.on_limit) if t in menu.menus]
    seen: set[str] = set(roots)
    todo = list(roots)
    while todo:
        for child in succ[todo.pop()]:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    for node_id in nodes:
        if node_id not in seen:
            error(f"menus.{node_id}", "unreachable: no path from start (or caller.blacklisted, limits.on_limit) leads here")

    can_end = {n for n in nodes if _can_end_by_itself(menu, n)}
    # a missing target is reported above; count it as a way out so it is not reported twice
    can_end |= {n for n in nodes if any(t not in menu.menus for _, t in edges(menu, n))}
    changed = True
    while changed:
        changed = False
        for node_id in nodes:
            if node_id not in can_end and any(child in can_end for child in succ[node_id]):
                can_end.add(node_id)
                changed = True
    trapped = [n for n in nodes if n not in can_end]
    trapped_succ = {n: [c for c in succ[n] if c not in can_end] for n in trapped}
    for component in _sccs(trapped, trapped_succ):
        if len(component) > 1 or component[0] in trapped_succ[component[0]]:
            first = min(component)
            error(
                f"menus.{first}",
                f"loop with no way out ({_cycle_text(component, trapped_succ)}): no path reaches a queue, "
                "callback, transfer or hang-up",
            )
    instant = [n for n in nodes if menu.menus[n].type not in INPUT_TYPES and menu.menus[n].type not in TERMINAL_TYPES]
    instant_succ = {n: [c for c in succ[n] if c in instant] for n in instant}
    for component in _sccs(instant, instant_succ):
        if len(component) > 1 or component[0] in instant_succ[component[0]]:
            error(
                f"menus.{min(component)}",
                f"loop without any caller input ({_cycle_text(component, instant_succ)}): the call would spin forever",
            )

    # -- keys bound twice
    for node_id, node in menu.menus.items():
        if not isinstance(node, MenuNode):
            continue
        specials = []
        for name in ("repeat_key", "back_key"):
            key = menu.setting(node, name)
            if key is not None:
                origin = f"menus.{node_id}.{name}" if getattr(node, name) is not None else f"defaults.{name}"
                specials.append((name, key, origin))
        for name, key, origin in specials:
            if key in node.options:
                error(
                    f"menus.{node_id}.options.{key}",
                    f"key {key!r} is bound twice: to {node.options[key]!r} here and as the {name.replace('_', ' ')} ({origin})",
                )
        if len(specials) == 2 and specials[0][1] == specials[1][1]:
            error(
                f"menus.{node_id}.back_key",
                f"key {specials[0][1]!r} is bound twice: repeat key ({specials[0][2]}) and back key ({specials[1][2]})",
            )

    # -- type-ahead with nowhere to go
    for node_id, node in menu.menus.items():
        if isinstance(node, PlayNode) and node.type_ahead and not _input_follows(menu, node_id, succ):
            warn(
                f"menus.{node_id}.type_ahead",
                "no menu or collect node follows before the call leaves the IVR, so keys kept here are never used",
            )

    # -- languages and voices
    prompt_langs = list(menu.prompts)
    for language in languages or []:
        if language not in menu.prompts:
            error("prompts", f"language {language!r} (ivr.languages in the settings) has no [prompts.{language}] table")
    if default_language and default_language not in menu.prompts:
        error("prompts", f"default language {default_language!r} has no [prompts.{default_language}] table")
    for language in prompt_langs:
        if language not in menu.voices:
            error("voices", f"no espeak-ng voice for language {language!r} (add {language} = \"VOICE\" to [voices])")
    for node_id, node in menu.menus.items():
        if isinstance(node, LanguageNode) and node.language not in menu.prompts:
            error(f"menus.{node_id}.language", f"language {node.language!r} has no [prompts.{node.language}] table")

    # -- prompt texts and variables
    variables = {n.variable for n in menu.menus.values() if isinstance(n, CollectNode)}
    provided = set(LOOKUP_VARIABLES["caller"]) | set(LOOKUP_VARIABLES["callback"])
    for node in menu.menus.values():
        if isinstance(node, LookupNode):
            provided |= set(LOOKUP_VARIABLES[node.lookup])
    known_vars = variables | provided

    for path, items in _prompt_fields(menu):
        for index, item in enumerate(items):
            where = f"{path}.{index}"
            kind, value, names = parse_prompt_item(item)
            for name in names:
                if name not in known_vars:
                    error(where, f"variable {name!r} is never set (collect variables: {', '.join(sorted(variables)) or 'none'})")
            if kind == "prompt":
                missing = [lang for lang in prompt_langs if value not in menu.prompts[lang]]
                if missing:
                    error(where, f"prompt {value!r} has no text in " + ", ".join(f"[prompts.{m}]" for m in missing))
            elif kind == "template" and all(n in known_vars for n in names):
                expansions = _template_expansions(value, names)
                for language in prompt_langs:
                    absent = [e for e in expansions or [] if e not in menu.prompts[language]]
                    if absent:
                        error(where, f"[prompts.{language}] lacks {', '.join(absent)} (values of {', '.join(names)})")
            elif kind == "say":
                for language in prompt_langs:
                    if language not in FRAGMENTS:
                        error(where, f"no spoken {value}s for language {language!r} (supported: {', '.join(FRAGMENTS)})")

    for node_id, node in menu.menus.items():
        if isinstance(node, LookupNode) and node.input is not None and node.input not in variables:
            error(f"menus.{node_id}.input", f"variable {node.input!r} is not collected by any collect node")
        if isinstance(node, CallbackNode):
            for name in ("at", "number_variable"):
                value = getattr(node, name)
                if value not in (None, "next_opening") and value not in variables:
                    error(f"menus.{node_id}.{name}", f"variable {value!r} is not collected by any collect node")
            if node.at not in (None, "next_opening"):
                collectors = [n for n in menu.menus.values() if isinstance(n, CollectNode) and n.variable == node.at]
                if collectors and all(c.check != "hhmm" for c in collectors):
                    warn(f"menus.{node_id}.at", f"variable {node.at!r} is not collected with check = 'hhmm'")

    # -- prompt tables: same ids everywhere, nothing unused
    all_ids = {pid for table in menu.prompts.values() for pid in table}
    for language in prompt_langs:
        for pid in sorted(all_ids - set(menu.prompts[language])):
            others = [lang for lang in prompt_langs if pid in menu.prompts[lang]]
            error(f"prompts.{language}", f"{pid!r} is in {', '.join(f'[prompts.{o}]' for o in others)} but not here")
    used = used_prompts(menu) | set(QUEUE_PROMPTS)
    for pid in sorted(all_ids - used):
        language = next(lang for lang in prompt_langs if pid in menu.prompts[lang])
        warn(f"prompts.{language}.{pid}", "not used by any node")
    for language, table in menu.prompts.items():
        for pid in table:
            if not PROMPT_ID.match(pid):  # pragma: no cover - the schema already refuses these
                error(f"prompts.{language}.{pid}", "not a prompt id")
    return findings


def describe_node(menu: IvrMenu, node_id: str) -> str:
    """``main (menu): Main menu`` - for listings."""
    node: Any = menu.menus[node_id]
    label = f": {node.label}" if node.label else ""
    return f"{node_id} ({node.type}){label}"
