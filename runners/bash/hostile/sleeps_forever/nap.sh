#!/usr/bin/env bash
sleep 1000
