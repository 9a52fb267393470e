@test "explodes" {
  run bash bomb.sh
  [ "$status" -eq 0 ]
}
