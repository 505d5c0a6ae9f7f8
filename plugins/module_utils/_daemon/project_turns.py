# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Fair turns between projects: a project answers at most one share of requests per loop pass.

One read can carry thousands of pipelined requests, and every connection of a project
can have one.  Answering them all in the pass that read them made a neighbour's single
request wait behind all of them (docs/daemon.md#fair-turns).  So the requests each
project answers are counted; once a project has answered PROJECT_TURN_REQUESTS, a turn
starts: the counts are cleared and ``_next_turn`` is queued with ``call_soon``, so it
runs at the start of the next pass, before that pass's reads.  Until then a project
that uses its share again keeps its unanswered lines on that connection, stops reading
it, and waits in its project's queue; ``_next_turn`` clears the counts again and
resumes the waiting connections of each project in arrival order, round-robin, until
its share is used.  A pass thus answers fewer than two shares of one project (what it
answered before the turn started, then one share), and exactly one share in every pass
while a connection waits.  Counting without a turn costs nothing per pass: a client
that sends one request at a time queues a turn once per share, not once per request.
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
        """Requests ``project`` may still answer in this pass (a turn starts when its share is used)."""
        spent = self.spent.get(project, 0)
        if spent >= PROJECT_TURN_REQUESTS and not self.scheduled:
            # Its count may span many passes: start a turn, counted from now.
            self._start_turn()
            spent = 0
        return PROJECT_TURN_REQUESTS - spent

    def charge(self, project, answered):
        """``project`` answered ``answered`` requests of what ``left`` allowed it."""
        self.spent[project] = self.spent.get(project, 0) + answered

    def wait(self, conn):
        """``conn`` used its project's share with lines left: resume it in a later pass."""
        self.deferred += 1
        queue = self.waiting.get(conn.project)
        if queue is None:
            queue = self.waiting[conn.project] = collections.deque()
        queue.append(conn)

    def _start_turn(self):
        self.spent.clear()
        self.scheduled = True
        self.loop.call_soon(self._next_turn)

    def _next_turn(self):
        waiting, self.waiting = self.waiting, {}
        if waiting:
            self._start_turn()      # this pass's counts; the next turn resumes what waits again
        else:
            self.spent.clear()
            self.scheduled = False
        for project, queue in waiting.items():
            while queue:
                if self.spent.get(project, 0) >= PROJECT_TURN_REQUESTS:
                    # Its share of this pass is used: the rest keep their place for the next.
                    queue.extend(self.waiting.get(project) or ())
                    self.waiting[project] = queue
                    break
                queue.popleft().resume_turn()
