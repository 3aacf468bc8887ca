import type { DomainEvent } from './catalogue.ts'

export type EventListener = (event: DomainEvent) => void

/**
 * In-process fan-out of domain events that are already stored. Listeners run
 * synchronously and must not throw; one that does is reported and the others still run.
 */
export class EventBus {
  private readonly listeners = new Set<EventListener>()
  private readonly onListenerError: (error: unknown) => void

  constructor(onListenerError: (error: unknown) => void = () => {}) {
    this.onListenerError = onListenerError
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  publish(event: DomainEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch (error) {
        this.onListenerError(error)
      }
    }
  }
}
