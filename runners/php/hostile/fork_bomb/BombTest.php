<?php

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

class BombTest extends TestCase
{
    public static function setUpBeforeClass(): void
    {
        require_once 'Bomb.php';
    }

    public function testGo(): void
    {
        $this->assertTrue(go());
    }
}
