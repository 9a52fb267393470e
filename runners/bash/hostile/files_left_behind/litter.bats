@test "answer" {
  run bash litter.sh
  [ "$output" = "42" ]
}
