"""Line pools and shifts: how many calls of a province may be in progress at once, by the clock.

Pure rules in ``shifts`` (which shift applies, which province a number reaches) and ``pool``
(may one more call take a line); ``redis`` keeps the live count atomically for every instance.
"""
