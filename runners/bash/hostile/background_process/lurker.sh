#!/usr/bin/env bash
# A grandchild that outlives the test, detached into a session of its own, its
# descriptors closed (so that bats does not wait for it).
setsid bash -c 'while :; do sleep 1; done' </dev/null >/dev/null 2>&1 3>&- &
echo 42
