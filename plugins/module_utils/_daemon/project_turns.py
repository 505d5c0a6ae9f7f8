# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Fair turns between projects: each answers at most PROJECT_TURN_REQUESTS requests per loop pass.

One read can carry thousands of pipelined requests, and every connection of a project
can have one.  Answering them all in the pass that read them made a neighbour's single
request wait behind all of them (docs/daemon.md#fair-turns).  So the requests a project
has answered are counted per event-loop pass; past its share, a connection keeps its
unanswered lines, stops reading, and waits in its project's queue.  The next pass
starts with ``_next_turn`` (scheduled with ``call_soon``, so it runs before that pass's
reads): it gives every waiting project a fresh share and resumes its connections in
arrival order, round-robin, until the share is used.
"""

from __future__ import annotations

import collections

from ansible_collections.remo.broker.plugins.module_utils._protocol import PROJECT_TURN_REQUESTS


class ProjectTurns:
    """The per-pass request counts of the projects, and the connections waiting for a turn."""

    __slots__ = ("loop", "spent", "waiting", "scheduled", "deferred")

    def __init__(self):
        self.loop = None
        self.spent = {}         # project -> requests answered in this pass
        self.waiting = {}       # project -> deque of connections with unanswered lines, in arrival order
        self.scheduled = False  # _next_turn is queued: ``spent`` belongs to this pass
        self.deferred = 0       # times a connection waited for a turn (status)

    def left(self, project):
        """Requests ``project`` may still answer in this pass."""
        if not self.scheduled:
            # The first request of a pass: the counts so far belong to a finished pass.
            self.spent.clear()
            self.scheduled = True
            self.loop.call_soon(self._next_turn)
        return PROJECT_TURN_REQUESTS - self.spent.get(project, 0)

    def spend(self, project, used):
        self.spent[project] = self.spent.get(project, 0) + used

    def wait(self, conn):
        """``conn`` used its project's share with lines left: resume it in a later pass."""
        self.deferred += 1
        queue = self.waiting.get(conn.project)
        if queue is None:
            queue = self.waiting[conn.project] = collections.deque()
        queue.append(conn)

    def _next_turn(self):
        self.scheduled = False
        self.spent.clear()
        waiting, self.waiting = self.waiting, {}
        for project, queue in waiting.items():
            while queue:
                if self.scheduled and self.spent.get(project, 0) >= PROJECT_TURN_REQUESTS:
                    # Its share of this pass is used: the rest keep their place for the next.
                    rest = self.waiting.get(project)
                    queue.extend(rest or ())
                    self.waiting[project] = queue
                    break
                queue.popleft().resume_turn()
