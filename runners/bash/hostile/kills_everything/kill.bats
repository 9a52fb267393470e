@test "kills every process it may" {
  kill -KILL -1
}
