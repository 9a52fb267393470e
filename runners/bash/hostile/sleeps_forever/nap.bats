@test "naps" {
  run bash nap.sh
  [ "$status" -eq 0 ]
}
