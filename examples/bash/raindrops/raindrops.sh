#!/usr/bin/env bash
# Raindrops: the sounds of a number's factors 3, 5 and 7, else the number itself.
main() {
    local n=$1 sound=""
    (( n % 3 == 0 )) && sound+="Pling"
    (( n % 5 == 0 )) && sound+="Plang"
    (( n % 7 == 0 )) && sound+="Plong"
    echo "${sound:-$n}"
}

main "$@"
