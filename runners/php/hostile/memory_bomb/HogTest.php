<?php

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

class HogTest extends TestCase
{
    public static function setUpBeforeClass(): void
    {
        require_once 'Hog.php';
    }

    public function testEat(): void
    {
        $this->assertTrue(eat());
    }
}
