"""The capacity estimator's tuning (capacity_estimate.py says what each rule does with these):
each constant with what was measured for it. Split from capacity_estimate.py (est31) so that
file holds the rules; imported there by name, one source of truth each."""

from __future__ import annotations

from chadthrottle.contract import Direction

RISE_S = 0.010  # a queue this deep (beyond each path's minimum) is bufferbloat
DEEP_RISE_S = 0.2  # beyond this, cut deeper: a queue this full takes seconds to drain at CUT_SHARE
CUT_SHARE = (
    0.85  # of the achieved rate: the queue drains at 1 - CUT_SHARE x SHAPE_SHARE of the link
)
DEEP_CUT_SHARE = 0.7
MAX_CUT_SHARE = (
    0.5  # one cut keeps at least this share of the capacity: 20 -> 10 Mbit/s in one, 20 -> 5 in two
)
NOISE_SHARE = (
    0.1  # of our own queue's wait, added to RISE_S: the wait is subtracted from smoothed round
)
# trips at one instant, and errs in proportion (at the floor a leaf holds seconds: measured, an estimate that
# fell there after a stall saw a "rise" every tick and never came back)
RAISE_STEPS = {
    # raises in a row grow the step (10 -> 15 Mbit/s in 5 ticks); 1.25 overshot by 25%: 0.1 s of queue
    Direction.DOWN: (1.03, 1.06, 1.12),
    Direction.UP: (1.02, 1.03, 1.05),  # judged only by the round trips, 2 s late: smaller
}  # 1.4 overshot by 40%
STREAK_GAP_S = 6.0  # raises further apart are not in a row (an upload's 5% step after a pause: 0.12 s of queue)
JUDGE_S = {  # a direction's raise is judged this long before its next one
    Direction.DOWN: 0.9,  # a tick: what passed tells (TOOK_SHARE)
    Direction.UP: 2.0,  # what we send passes our shaper whatever the modem does: the round trips tell
}
# of a raised download's shaping rate: less passed, the modem's rate is under it. What passes
# lags the rate by 1-3% while it climbs; 0.975 took rising links for failures and never followed
TOOK_SHARE = 0.96
FORGET_FAILED_S = {  # small steps near a failed probe for this long, then the link may have changed
    Direction.DOWN: 20.0,
    Direction.UP: 60.0,  # each try past the link costs the calls 80-110 ms: found again a minute later
}
# after a download's cut, what passed (the modem's rate) x these: its near zone, whose top is
# stepped past by PAST_STEP. 1.03 (set before PAST_STEP was) put the top at 1.01 of the link: the
# 2% steps went past it a tick unjudged (1.01), then to 1.03, 27-73 ms at the modem at the
# take-back (61-73 in 6 of 9 such climbs; bench/capacity_follow.py, est16d's recordings, est16e)
CUT_GOOD, CUT_FAILED = 0.97, 1.0
UNDER_SHARE = 0.9  # of its shaping rate: a loaded download that passed less is held back past us
DOWN_FIRST_S = 6.0  # cuts of the download alone this close together are in a row
DOWN_ALONE_CUTS = (
    2  # in a row at most (a halving takes two); then the upload's queue may be it: both
)
UP_TURN_RAISES = 2  # an upload's turn beside a loaded download: this many raises in a row at most
UP_TURN_S = (
    20.0  # an upload not raised this long gets a probe while the download sits near its link
)
SAME_LINK = (
    0.1  # failures this close to the last one: the link has not changed, probe it less often
)
NEAR_ZONE = 1.06  # above the capacity known to pass: small steps up to this share of it
NEAR_STEP = 1.02  # the step towards where a probe last failed: a 2% overshoot fills a queue slowly, seen early
# a download's first step past where its probe failed (reached without a failure): the smallest
# that what passed judges in its tick (1 / TOOK_SHARE = 1.042), so a link still there is seen at
# once. RAISE_STEPS' 3% was not (0.98-0.99 of the link passed), the 6% after it was: 1.02 then
# 1.08 of the link, 55-121 ms at the modem at each take-back (bench/capacity_follow.py, est16b)
PAST_STEP = 1.045
# a download's near step stops at where its probe failed, and the step past it is PAST_STEP from
# there (_step), judged before the next raise (_past_unjudged). A near step across it, then
# PAST_STEP from above it, shaped 1.033-1.048 of the link (42-74 ms at the modem at the take-back;
# 59-74 in the 7 at 1.041-1.048) where PAST_STEP from it shaped 1.027-1.037 (33-54 ms; bench/
# capacity_follow.py, est16d's recordings, est16e). One step from under it to PAST_STEP past it
# (6%) was taken back on a link that had doubled: what passed lags a raise that size (est16e).
# our download queue this long: the modem passed all (at a failed probe 0-100 ms; 20 Mbit/s: ~100 ms)
FULL_WAIT_S = 0.2
EMPTY_WAIT_S = (
    0.001  # our queue this short while the direction is loaded: the bottleneck is past us
)
# a download's climb in RAISE_STEPS (past where a probe failed lower, or where it failed
# forgotten, FORGET_FAILED_S) stops at its highest failure this recent, with no cut since, and
# steps past it by PAST_STEP: recorded, a probe failed at 0.91 of the link (17.98 Mbit/s, its
# queue the upload's failed turn's, at load 7), stepping past that passed, and 6% then 12% went
# to 1.07 of the link, 75 ms at the modem, where it had failed at 20.3-20.5 for a minute
# (bench/capacity_follow.py --slow-share 1.0, est16f 22:07 UTC)
TOP_FAILED_S = 60.0
PROBE_GAP_S = 1.0  # between two raises (of either direction): one a tick
BACK_SHARE = (
    0.95  # a failed probe goes back to this share of where it started, so the queue it made drains
)
LOADED_SHARE = 0.8  # of the shaping rate: the direction is loaded
BULK_SHARE = (
    0.25  # of the busier direction's rate: this direction carries bulk, not acknowledgements
)
SUSPECT_S = 4.5  # a rise this soon after raises: they (probes) failed; the round trips show a queue 1-3 s late
# no probe of a direction this long after its probe failed (the second and later in a row: longer)
HOLD_S = {
    Direction.DOWN: (2.0, 3.0),  # judged in a tick: a failure costs a tick of a small overshoot
    Direction.UP: (5.0, 15.0),  # judged 2-3 s late: each failure costs more
}
BLAME_S = 4.5  # a failed upload probe takes back every raise this recent: a 1-3% overshoot shows 3-4 s late
REFRACTORY_S = 2.0  # after a cut (of either direction), the round trips need this long to show the queue drained
HELD_S = 60.0  # an upload cut under what it held this recently goes back up to it (not a probe)
# after the upload's own link slowed, tries back towards what it held before (the link may
# come back): these apart (the next after each failed try), in these steps, one a tick. 5 s: the
# tick after a failed try's queue was seen drained (BLAME_S), back at what it held in one step
# (6 s, and three steps back, put the next try 9-10 s after a failure: a link back a second after
# one was followed in 11-12 s, bench/capacity_follow.py --vary up, est16b; est16d)
TRY_GAP_S = (5.0,) * 6 + (12.0, 24.0, 48.0)
# (1.0: the second step held a tick, judged, before the steps grow: at (1.06, 1.06, 1.12) a try
# past a link still slow was seen only at its third step, 1.19-1.21 of the link, 190-270 ms at the
# modem; the second, 1.06-1.08, had put 20-70 ms there, est16b). Past the hold and a 12% step the
# link is 1.2 of the slower one at least, most likely back: 25% (12% took a tick more to follow)
TRY_STEPS = (1.06, 1.06, 1.0, 1.12, 1.25)
TRY_FORGET_S = 300.0  # the rate before the slowing is tried for this long after it
# a try failed once our upload queue holds less than this share of what it held before it
# (or the round trips rose): past the link, the bytes queued here move to the modem's queue,
# what the calls wait for there (not always at once: once its senders stop losing here,
# their windows grow and fill both queues for a tick or two, bench 22:01 UTC)
TRY_QUEUE_SHARE = (
    0.75  # held, one tick's read 0.78-1.05 of their median (0.85: tries failed for it)
)
# between ticks (glance): a raise being judged whose round trips rose this much above what they
# read before it (the median of the last GLANCE_DELAYS readings) at two glances in a row failed:
# its queue at the modem, seen sooner than at a tick. Read every 0.25 s with the modem empty, the
# delay signal is 0-39 ms (p90 15, p99 31), the lower of two in a row 0-18 ms (p99 17; bench/
# capacity_follow.py --glance-s 0.25, est16c): one glance's reading took probes for failures
GLANCE_RISE_S = 0.012
# (what passed is left to the tick: read every 0.25 s it is 0.70-1.13 of a raised download's
# rate 0.25-0.5 s after the raise with the link not reached, and glances judging by it took
# 20 of 21 probes that passed for failures, est16c)
GLANCE_DELAYS = 4
# an upload's turn (its raises judged by the round trips alone) against what the delay read
# before its first raise (the median of the last GLANCE_DELAYS readings), not only RISE_S and
# NOISE_SHARE of our own queue's wait (20-60 ms more with our upload queue 0.2-0.6 s): a turn's
# 2% past the link read +10 ms there 2 s on, with 18 ms in the modem's upload queue, its 3%
# raise was made on it and the failure was seen a tick later with 66 ms there (bench/
# capacity_follow.py --slow-share 1.0, est16f 22:07 UTC; 61-112 ms in est16e's). Read each
# tick with the modem empty, the delay is more than 5 ms above that median in 5% of ticks,
# 10 ms in 0.8%, never two ticks in a row (est16b-est16d's 7 recordings, 247 ticks). Kept for
# the whole turn (_note_raise), not read again at each raise: a queue growing under TURN_HOLD_S
# a tick moved a reference read at each raise up with it, unbounded for an upload alone (no
# UP_TURN_RAISES), and 11 ms over the turn's start twice was no failure (review7; est16g):
TURN_HOLD_S = 0.005  # this far above it, the turn's next raise waits (judged on)
TURN_RISE_S = 0.010  # this far above it at two readings in a row, the turn failed
# between ticks (glance): our download queue, in bytes, falling at GLANCE_FALLS readings in a
# row, each by no more than GLANCE_FALL_MAX of its shaping rate a second, by GLANCE_FALL_S of
# that rate in all: a queue grows at the modem, and the raise being judged failed. The download's
# senders keep about as many bytes queued as their windows hold (they lose here, at our leaf's
# limit), so what leaves our queue is in the modem's: at a download step past the link its
# download queue, at an upload's its upload queue (the download's acknowledgements wait there,
# and its data spreads over the longer round trip). Read every 0.1 s, a step 2-4.5% past the
# link showed as 2-6 KB less here at each reading from the first, the modem's queue growing as
# much (bench/capacity_follow.py --glance-s 0.1 --watch, est16h): seen from the 2nd-5th
# reading, 5-22 ms at the modem, where the ticks saw it a second or more later. A sender's
# loss here drops 15-40 KB in a reading or two, then its window grows back: faster than
# GLANCE_FALL_MAX, it starts the count again. Not seen: a step so near the link that the
# senders' growing windows fill both queues (ours did not fall; _past_queue judges that)
GLANCE_FALLS = 3
GLANCE_FALL_MAX = 0.06
GLANCE_FALL_S = 0.006
GLANCE_FALL_GAP_S = 0.5  # readings further apart (a tick's, after no glances) start the count again
# the upload's one-way reading (UploadQueueReading: the modem's upload queue alone, from the far
# ends' ACK timestamps, the least since the last look). Measured in the bench (owd28): with the
# modem's queues empty two looks in a row never read SEEN_MS (0 of 5,446 glances), one look did 8
# times, each of one or two ACKs (a far end's 40 ms delayed ACK); it showed the modem's upload
# queue 0.1-0.5 s after that passed 5 ms, where the round trips' ticks took a failed raise back
# 0.2-1.3 s later at 13-158 ms, and 5 of those 13 take-backs were false (the download's queue)
SEEN_MS = 5.0  # at two looks in a row (or one of SURE_ACKS ACKs): a queue at the modem
SURE_ACKS = 3  # a look's least over this many ACKs is no delayed ACK's
# no reading this long: the upload judged by the round trips again, and no one-way raise is made
# at a look without one. At 5 s, a reading that stopped mid-turn (a far end without timestamps)
# left its raises unjudged: the modem's 400 ms full in 32 of 120 toy runs (review32's E4)
ONE_WAY_GONE_S = 1.5
# a standing queue is cut only this deep, with the upload loaded and the round trips risen
# (RISE_S): a far end's TSvals are its own (a forged reading cut the upload to the floor), another
# device's queue is not ours to drain, and looks of 3 ACKs read 5-8 ms with the modem empty
# (review32's E1, E2, E5)
STAND_MS = 10.0
# the deep hold (_acks_held) for this long of looks reading DEEP_RISE_S in a row at most: a
# queue of ours is cut and drains (7-8 s for a halved link's 400 ms); one standing there
# (a far end's forged or stepped clock, read as a queue) held the download's TOOK_SHARE
# take-back off for as long as it stood: in the toy at 300 ms, the download sat at 1.08 of
# its link, the modem's download queue full (400 ms) for 120 s (review33a H3; 8 s: p95 70 ms)
DEEP_HOLD_MAX_S = 5.0
STAND_WOBBLE = 0.05  # a standing queue's looks (each a least) wobble by this share (_up_standing)
DOWN_HOLD_AFTER_S = 1.5  # after a one-way take-back or cut: the acknowledgements held there burst
# while readings arrive, the upload's cadence: what following a doubled upload link within 10 s
# takes (est16j: a raise past the old rate within ~5 s of any change, x1.5 in a few raises), in
# steps that grow slower (a 12-25% step past the link filled 39-52 ms by the second glance at 5
# ms; in these, 8-15 ms, and (A) followed in 7, 8, 11 s at load <= 2.3: owd28's --one-way-steps)
ONE_WAY_RAISE_STEPS = (1.04, 1.06, 1.09, 1.12, 1.15)
ONE_WAY_JUDGE_S = 1.0  # judged at glances within a few tenths: the next raise a tick on
ONE_WAY_FORGET_FAILED_S = 5.0  # where it failed: a turn every ONE_WAY_TURN_S steps past it
ONE_WAY_HOLD_S = (2.0, 4.0)  # a failure costs 5-15 ms at the modem, not 30-70
ONE_WAY_TURN_S = 5.0
ONE_WAY_SUSPECT_S = 2.0  # an upload raise judged this long (a 2% one showed 1.7-1.8 s on, owd28)
ONE_WAY_DRAIN_S = 0.5  # a one-way take-back's queue (5-20 ms) drains within this
NOT_OURS_S = 30.0  # after a one-way cut, a reading standing where it left it is not ours this long
ONE_WAY_CLOSE_S = 0.3  # readings this close: their growth is the queue's, not a second's least
ONE_WAY_LATE_S = 2.0  # a one-way take-back's queue shows in the round trips this long at most
ONE_WAY_TURN_RAISES = 8
# the upload's rate before a one-way cut, a download's before its last cut: its link passed
# that this recently (a halving that ends). While the upload sits under KNOWN_SHARE of it, its
# turns come KNOWN_TURN_S apart though the download climbs, and climb in KNOWN_STEPS once a
# raise passed where the last turn failed; while a download climbs back under KNOWN_SHARE of
# it, the upload's turns wait (unless the upload is under its own; est31)
KNOWN_S = 30.0
KNOWN_SHARE = 0.8
KNOWN_TURN_S = 3.0
KNOWN_STEPS = (1.04, 1.09, 1.15, 1.25)
FLOOR_BPS = 32_000  # 256 kbit/s: below it nothing interactive works anyway
MIN_TRAFFIC_BPS = 8_000  # less than this through a direction tells nothing about its capacity
