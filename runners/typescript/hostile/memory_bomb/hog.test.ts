import { eat } from './hog'

it('eats', () => {
  expect(eat()).toBeGreaterThan(0)
})
