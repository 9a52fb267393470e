@test "no other bash process of the job can be read" {
  found=$(. ./peek.sh)
  [ -z "$found" ]
}
