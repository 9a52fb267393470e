@test "eats" {
  run bash hog.sh
  [ "$status" -eq 0 ]
}
