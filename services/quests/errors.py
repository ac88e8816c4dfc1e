"""The quests service's domain errors (each maps to gRPC status in runtime.errors).

DomainError
├── InvalidArgument
│   ├── InvalidQuest           invalid_quest | unknown_currency
│   ├── InvalidWalletAddress   invalid_wallet_address
│   ├── InvalidPageToken       invalid_page_token (runtime.pages)
│   └── InvalidCount           invalid_count (around-me: players on each side)
├── NotFound
│   └── QuestNotFound          quest_not_found | prerequisite_not_found
├── AlreadyExists
│   ├── QuestExists            quest_exists
│   ├── AlreadyCompleted       already_completed (metadata: the original completion)
│   └── AlreadyClaimed         already_claimed (metadata: today's daily claim)
├── Aborted
│   └── QuestInactive          quest_inactive (archived, or outside its active window)
├── FailedPrecondition
│   └── PrerequisiteMissing    prerequisite_missing (metadata: missing = ids, comma-separated)
└── Unavailable
    ├── ProgressBusy           progress_busy (retry_after: 1; concurrent writers kept
    │                          colliding past the bounded retries)
    ├── LeaderboardRebuilding  leaderboard_rebuilding (retry_after: 1)
    └── PeerUnavailable        auth_unavailable | wallet_unavailable
"""

from __future__ import annotations

from runtime.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)


class InvalidQuest(InvalidArgument):
    reason = "invalid_quest"


class InvalidWalletAddress(InvalidArgument):
    reason = "invalid_wallet_address"


class InvalidCount(InvalidArgument):
    reason = "invalid_count"


class QuestNotFound(NotFound):
    reason = "quest_not_found"


class QuestExists(AlreadyExists):
    reason = "quest_exists"


class AlreadyCompleted(AlreadyExists):
    reason = "already_completed"


class AlreadyClaimed(AlreadyExists):
    reason = "already_claimed"


class QuestInactive(Aborted):
    reason = "quest_inactive"


class PrerequisiteMissing(FailedPrecondition):
    reason = "prerequisite_missing"


class ProgressBusy(Unavailable):
    reason = "progress_busy"


class LeaderboardRebuilding(Unavailable):
    reason = "leaderboard_rebuilding"


class PeerUnavailable(Unavailable):
    reason = "peer_unavailable"
