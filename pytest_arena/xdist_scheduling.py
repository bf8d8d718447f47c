"""The xdist controller's scheduler for an arena run. Imported only there: it needs pytest-xdist.

It overrides private methods of xdist's ``LoadScopeScheduling`` (``_split_scope``,
``_assign_work_unit``, ``_reschedule``), calls ``_pending_of`` and reads its ``workqueue`` and
``registered_collections``,
so pyproject bounds pytest-xdist below 4 (tests/test_xdist_scheduling.py holds what they must do).
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

from .matches import blocks

GATES = "arena-gates"


class ArenaScheduling(LoadScopeScheduling):
    """xdist's load-scope scheduling with the arena's scopes: one block of battles per worker, then
    the gates, which run only once every other item has reported.

    A block goes whole to one worker, which judges it, so no judge call is made twice. The gates
    wait so that the controller knows every verdict when it evaluates them (``distributed``). A
    worker runs an item only once it has been sent the next one (or told to stop), so the first gate
    is sent as soon as nothing else is left to send, and the worker runs it when the gates that
    follow it (or its shutdown) are sent: after the last battle has reported. Items that are not the
    arena's keep xdist's module or class scopes.
    """

    def __init__(self, config, log, classify):
        super().__init__(config, log)
        self._classify = classify  # nodeid -> ("match", id) | ("gate", id) | None
        self._scopes: dict[str, str] = {}
        self._hold = False  # gates wait for the other items (there are some)
        self._gates: list[str] = []  # gate node IDs not sent yet
        self._gate_node = None  # the worker that runs them
        self._holding = False  # its first gate is sent and must not run yet

    def schedule(self) -> None:
        first = self.collection is None and self.collection_is_completed
        if first:  # name the scopes
            collection = next(iter(self.registered_collections.values()))
            found = {nodeid: self._classify(nodeid) for nodeid in collection}
            # The workers split their selection the same way (ArenaSession.select).
            match_ids = [item[1] for item in found.values() if item is not None and item[0] == "match"]
            block_of = blocks(match_ids, self.numnodes) if match_ids else {}
            for nodeid, item in found.items():
                if item is not None:
                    self._scopes[nodeid] = GATES if item[0] == "gate" else f"arena-block-{block_of[item[1]]}"
            self._hold = GATES in self._scopes.values() and any(v is None or v[0] != "gate" for v in found.values())
        super().schedule()
        if first and self._hold and self.collection is not None:
            self._gates = list(self.workqueue.pop(GATES, {}))
            if not self.workqueue:  # every worker has its last unit already
                live = [node for node in self.nodes if not node.shutting_down]
                if live:
                    self._start_gates(live[0])

    def _split_scope(self, nodeid: str) -> str:
        return self._scopes.get(nodeid) or super()._split_scope(nodeid)

    def _assign_work_unit(self, node) -> None:
        for scope in self.workqueue:  # held gates are never a unit to assign
            if scope != GATES or not self._hold:
                self.workqueue.move_to_end(scope, last=False)
                super()._assign_work_unit(node)
                return

    def _reschedule(self, node) -> None:
        if node.shutting_down:
            return
        if self._gates and not self._holding and not self.workqueue:
            self._start_gates(node)
        elif not (self._holding and node is self._gate_node):  # no shutdown while its first gate waits
            super()._reschedule(node)
            self._second_item(node)

    def _second_item(self, node) -> None:
        """A worker runs an item only once it has another (or is told to stop): one that replaced a
        crashed worker and was given a unit of one item would wait for ever (xdist gives two units
        only in the first distribution), so it gets a second unit."""
        while not node.shutting_down and self.workqueue and self._pending_of(self.assigned_work[node]) < 2:
            before = len(self.workqueue)
            self._assign_work_unit(node)
            if len(self.workqueue) == before:  # only held gates are left
                return

    def _start_gates(self, node) -> None:
        """Send the first gate: the node runs what it has left, then waits with the gate for its next item."""
        first = self._gates.pop(0)
        self._gate_node, self._holding = node, True
        self.assigned_work[node][GATES] = {first: False}
        node.send_runtest_some([self.registered_collections[node].index(first)])
        for other in self.nodes:  # nothing else is left to send: the others finish what they have
            if other is not node and not other.shutting_down:
                other.shutdown()
        self._release_when_done()

    def _release_when_done(self) -> None:
        if not self._holding or self.workqueue:
            return
        if not all(done for work in self.assigned_work.values() for scope, unit in work.items() if scope != GATES
                   for done in unit.values()):
            return
        # Every other item has reported: sending the rest of the gates (or the shutdown) lets the first run.
        self._holding = False
        node, rest, self._gates = self._gate_node, self._gates, []
        if rest:
            self.assigned_work[node][GATES].update(dict.fromkeys(rest, False))
            node.send_runtest_some([self.registered_collections[node].index(nodeid) for nodeid in rest])
        super()._reschedule(node)

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        super().mark_test_complete(node, item_index, duration)
        self._release_when_done()

    def remove_node(self, node):
        if node is self._gate_node and self._holding:  # it crashed: another worker takes the gates
            unsent = [nodeid for nodeid, done in self.assigned_work[node].pop(GATES, {}).items() if not done]
            self._gates[:0] = unsent
            self._gate_node, self._holding = None, False
        return super().remove_node(node)

    @property
    def tests_finished(self) -> bool:
        return not (self._gates or self._holding) and super().tests_finished

    @property
    def has_pending(self) -> bool:
        return bool(self._gates or self._holding) or super().has_pending
