@test "leaves a process holding bats' fd 3" {
  sleep 1000 &
  true
}
