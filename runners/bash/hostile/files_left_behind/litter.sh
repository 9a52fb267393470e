#!/usr/bin/env bash
echo "secret of the previous learner" > /tmp/left-behind.txt
mkdir -p /work/.hidden
echo "answers: 42" > /work/.hidden/notes.txt
cp "$0" /work/solution_copy.sh
mkfifo /tmp/a-fifo 2>/dev/null
chmod 000 /work/.hidden
echo 42
