#!/usr/bin/env bash
s=xxxxxxxxxxxxxxxx
while :; do s+=$s; done
