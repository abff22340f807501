#!/usr/bin/env bash
# Deletes network namespaces left by test runs that were killed before their own cleanup.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^(ptest-|pontoon-demo-)' || true); do
  ip netns delete "$ns" 2>/dev/null || true
done
