<?php

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

class LurkerTest extends TestCase
{
    public static function setUpBeforeClass(): void
    {
        require_once 'Lurker.php';
    }

    public function testAnswer(): void
    {
        $this->assertSame(42, answer());
    }
}
