@test "answer" {
  run bash lurker.sh
  [ "$output" = "42" ]
}
