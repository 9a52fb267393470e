<?php

function answer(): int
{
    file_put_contents('/tmp/left-behind.txt', 'secret of the previous learner');
    @mkdir('/work/.hidden');
    file_put_contents('/work/.hidden/notes.txt', 'answers: 42');
    file_put_contents('/work/SolutionCopy.php', file_get_contents(__FILE__));
    chmod('/work/.hidden', 0);
    return 42;
}
