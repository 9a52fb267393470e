#!/usr/bin/env bats

@test "the sound for 1 is 1" {
    run bash raindrops.sh 1
    [ "$status" -eq 0 ]
    [ "$output" = "1" ]
}

@test "the sound for 3 is Pling" {
    [[ $BATS_RUN_SKIPPED == "true" ]] || skip
    run bash raindrops.sh 3
    [ "$output" = "Pling" ]
}

@test "the sound for 35 is PlangPlong" {
    [[ $BATS_RUN_SKIPPED == "true" ]] || skip
    run bash raindrops.sh 35
    [ "$output" = "PlangPlong" ]
}

@test "the sound for 105 is PlingPlangPlong" {
    [[ $BATS_RUN_SKIPPED == "true" ]] || skip
    run bash raindrops.sh 105
    [ "$output" = "PlingPlangPlong" ]
}
